use clap::Parser;
use codex_mcp::codex::agent_run::{self, AgentRunOptions};
use codex_mcp::codex::detached::{self, Detached};
use codex_mcp::config::{AuthCommand, Cli, Command, DurableCommand};

/// The durable-run command, or `None` for the workspace command.
fn durable_command(cmd: DurableCommand) -> Option<Detached> {
    Some(match cmd {
        DurableCommand::Start {
            run_dir,
            foreground,
        } => Detached::Start {
            run_dir,
            foreground,
        },
        DurableCommand::Follow { run_dir, offset } => Detached::Follow { run_dir, offset },
        DurableCommand::Cancel { run_dir } => Detached::Cancel { run_dir },
        DurableCommand::Status { run_dir } => Detached::Status { run_dir },
        DurableCommand::List { runs_dir } => Detached::List { runs_dir },
        DurableCommand::Put { run_dir, file } => Detached::Put { run_dir, file },
        DurableCommand::Prune { runs_dir, ttl_secs } => Detached::Prune {
            runs_dir,
            ttl: std::time::Duration::from_secs(ttl_secs),
        },
        DurableCommand::Workspace => return None,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(codex_mcp::serve::run(args.settings()?))?,
        Command::Gateway(args) => {
            runtime.block_on(codex_mcp::gateway_kube::run(args.settings()?))?
        }
        Command::Auth {
            command: AuthCommand::Status(args),
        } => {
            let status = args.credential_provider()?.describe();
            println!("{status}");
            if status.starts_with("none") || status.starts_with("unusable") {
                std::process::exit(1);
            }
        }
        Command::Auth {
            command: AuthCommand::Import(args),
        } => println!(
            "{}",
            runtime.block_on(codex_mcp::credentials::import::run(&args.settings()))?
        ),
        Command::AgentRun(args) => {
            let opts = AgentRunOptions {
                codex_bin: args.codex_bin,
                cancel_on_stdin_eof: args.cancel_on_stdin_eof,
                credentials_dir: args.credentials_dir,
            };
            let code = match args.durable {
                None => runtime.block_on(agent_run::main(opts)),
                Some(cmd) => match durable_command(cmd) {
                    Some(cmd) => runtime.block_on(detached::main(opts, cmd)),
                    None => runtime.block_on(codex_mcp::project::ops::main()),
                },
            };
            std::process::exit(code);
        }
        Command::Crd => print!("{}", codex_mcp::api::crd_schema::crd_yaml()?),
        Command::ResourceName { agent, tenant } => {
            println!("{}", codex_mcp::resource_name(&tenant, &agent)?);
        }
        Command::Operator(args) => runtime.block_on(codex_mcp::operator::run(args.settings()?))?,
        Command::AgentSource => std::process::exit(codex_mcp::source::clone::main()),
        Command::Probe(args) => match runtime.block_on(codex_mcp::probe::run(&args.settings())) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("codex-mcp probe: {e}");
                std::process::exit(1);
            }
        },
        Command::AgentInit(args) => {
            std::process::exit(runtime.block_on(codex_mcp::operator::agent_init::main(args.check)))
        }
    }
    Ok(())
}
