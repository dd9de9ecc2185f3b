use clap::Parser;
use codex_mcp::codex::agent_run::{self, AgentRunOptions};
use codex_mcp::config::{AuthCommand, Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(codex_mcp::serve::run(*args))?,
        Command::Gateway(args) => runtime.block_on(codex_mcp::gateway_kube::run(*args))?,
        Command::Auth {
            command: AuthCommand::Status(args),
        } => {
            let status = codex_mcp::serve::credential_provider(&args)?.describe();
            println!("{status}");
            if status.starts_with("none") || status.starts_with("unusable") {
                std::process::exit(1);
            }
        }
        Command::Auth {
            command: AuthCommand::Import(args),
        } => println!(
            "{}",
            runtime.block_on(codex_mcp::credentials::import::run(&args))?
        ),
        Command::AgentRun(args) => {
            let code = runtime.block_on(agent_run::main(AgentRunOptions {
                codex_bin: args.codex_bin,
                cancel_on_stdin_eof: args.cancel_on_stdin_eof,
                credentials_dir: args.credentials_dir,
            }));
            std::process::exit(code);
        }
        Command::Crd => print!("{}", codex_mcp::operator::crd::crd_yaml()?),
        Command::Operator(args) => runtime.block_on(codex_mcp::operator::run(*args))?,
        Command::AgentInit(args) => {
            std::process::exit(runtime.block_on(codex_mcp::operator::agent_init::main(args.check)))
        }
    }
    Ok(())
}
