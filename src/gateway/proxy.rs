//! The gateway's URL as clients see it. Behind an ingress the client used
//! another scheme and host than the gateway received, and only the proxy
//! can say which: `X-Forwarded-Proto` and `X-Forwarded-Host` are believed
//! from configured proxies alone, and only when they hold a plain scheme and
//! host, since they end up in the RFC 9728 metadata and `WWW-Authenticate`.

use std::net::IpAddr;

/// Why `--trusted-proxies` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("trusted proxy {0:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8, 127.0.0.1)")]
    Address(String),
    #[error("trusted proxy {0:?}: prefix length must be at most {1}")]
    Prefix(String, u8),
}

/// One address range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Result<Self, ProxyError> {
        let bad = || ProxyError::Address(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(ProxyError::Prefix(text.to_owned(), max));
        }
        Ok(Self { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let mask = |len: u32| {
            u128::MAX
                .checked_shl(len - u32::from(self.prefix))
                .unwrap_or(0)
        };
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(32);
                u128::from(u32::from(net)) & m == u128::from(u32::from(ip)) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Reads `--trusted-proxies` entries; empty entries are skipped.
    pub fn parse(entries: &[String]) -> Result<Self, ProxyError> {
        entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.0.iter().any(|c| c.contains(ip)))
    }
}

/// A header value that is a host name or address with an optional port.
fn sane_host(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    ok.then_some(value)
}

/// The gateway's base URL as the client sees it: the forwarded scheme and
/// host when a trusted proxy sent sane ones, else the Host header.
pub fn external_base(
    headers: &http::HeaderMap,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            // A proxy chain appends; the first value is what the client used.
            .map(|v| v.split(',').next().unwrap_or_default().trim())
    };
    let from_proxy = trusted.trusts(peer);
    let proto = from_proxy
        .then(|| get("x-forwarded-proto"))
        .flatten()
        .map(str::to_ascii_lowercase)
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".to_owned());
    let host = from_proxy
        .then(|| get("x-forwarded-host").and_then(sane_host))
        .flatten()
        .or_else(|| get("host").and_then(sane_host))
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn ranges_match_their_addresses_only() {
        let t =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.7".into(), "fd00::/8".into()])
                .unwrap();
        assert!(t.trusts("10.1.2.3".parse().ok()));
        assert!(!t.trusts("11.0.0.1".parse().ok()));
        assert!(t.trusts("192.168.1.7".parse().ok()));
        assert!(!t.trusts("192.168.1.8".parse().ok()));
        assert!(t.trusts("fd12::1".parse().ok()));
        assert!(!t.trusts("fe80::1".parse().ok()));
        assert!(t.trusts("::ffff:10.0.0.1".parse().ok()), "IPv4-mapped");
        assert!(!t.trusts(None));
        assert!(TrustedProxies::parse(&["0.0.0.0/0".into()])
            .unwrap()
            .trusts("8.8.8.8".parse().ok()));
        assert!(!TrustedProxies::default().trusts("127.0.0.1".parse().ok()));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err(),
            ProxyError::Prefix("10.0.0.0/33".into(), 32)
        );
        assert!(TrustedProxies::parse(&["proxy.local".into()])
            .unwrap_err()
            .to_string()
            .contains("\"proxy.local\""));
    }

    #[test]
    fn forwarded_headers_count_from_trusted_proxies_only() {
        let h = headers(&[
            ("host", "10.0.0.5:8210"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "codex.example.com"),
        ]);
        let proxy = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let from = |ip: &str| ip.parse().ok();
        assert_eq!(
            external_base(&h, from("10.0.0.1"), &proxy),
            "https://codex.example.com"
        );
        assert_eq!(
            external_base(&h, from("203.0.113.9"), &proxy),
            "http://10.0.0.5:8210"
        );
        let evil = headers(&[
            ("host", "127.0.0.1:8210"),
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "evil\"x"),
        ]);
        assert_eq!(
            external_base(&evil, from("10.0.0.1"), &proxy),
            "http://127.0.0.1:8210"
        );
    }
}
