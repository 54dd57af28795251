//! Every call Tessera makes to a URL a tenant configured (the pre-update hook, and whatever
//! else reaches out) goes through one HTTP client that refuses to connect to loopback,
//! private, link-local, multicast and other non-public addresses, unless the operator allows
//! them (`outbound.allow_private_targets`, for tests and local development). The check runs
//! on the addresses a name resolves to, so a public name pointing at `127.0.0.1` is refused
//! too, and on an address written in the URL itself. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an outbound call was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL is not a valid http(s) URL")]
    BadUrl,
    #[error("{0} is not a public address; outbound calls to private targets are not allowed")]
    PrivateTarget(String),
}

/// The client for outbound calls, with the operator's choice about private targets.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    pub fn new(allow_private: bool) -> reqwest::Result<Self> {
        Ok(Self { client: client(allow_private)?, allow_private })
    }

    /// A `POST` to `url`, once the URL itself passes the check.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.client.post(check_url(url, self.allow_private)?))
    }

    /// A `GET` of `url`, once the URL itself passes the check.
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.client.get(check_url(url, self.allow_private)?))
    }
}

/// Whether a failed call was refused by the guard (rather than failing on the network).
pub fn refused_in(e: &reqwest::Error) -> bool {
    std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.downcast_ref::<Refused>().is_some() || e.to_string().contains("not a public address"))
}

/// The HTTP client for calls to configured URLs.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
    builder.build()
}

/// Checks a URL before a call: its scheme, and an address written in it (which no resolver
/// sees). Names are checked when they are resolved.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, Refused> {
    let url = reqwest::Url::parse(url).map_err(|_| Refused::BadUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::BadUrl);
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(Refused::BadUrl),
    };
    match literal {
        Some(ip) if !allow_private && !is_public(ip) => Err(Refused::PrivateTarget(ip.to_string())),
        _ => Ok(url),
    }
}

/// A resolver that keeps only public addresses, and fails when a name has none.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused::PrivateTarget(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is reachable on the public internet: not loopback, private, shared
/// (carrier-grade NAT), link-local, multicast, broadcast, documentation, benchmarking or
/// reserved, in IPv4 or IPv6 (IPv4 inside IPv6 is judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0064 && s[1] == 0xff9b && !is_public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn a_private_address_in_the_url_is_refused_unless_allowed() {
        for url in ["http://127.0.0.1:9/x", "http://[::1]/", "https://10.0.0.1/hook", "http://[::ffff:192.168.0.1]/"] {
            assert!(matches!(check_url(url, false), Err(Refused::PrivateTarget(_))), "{url}");
            assert!(check_url(url, true).is_ok(), "{url} when allowed");
        }
        assert!(check_url("https://hooks.example.com/x", false).is_ok(), "names are checked when resolved");
        assert_eq!(check_url("ftp://example.com/", true), Err(Refused::BadUrl));
        assert_eq!(check_url("not a url", true), Err(Refused::BadUrl));
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_private_addresses_is_refused() {
        let client = client(false).unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        assert!(chain.contains("not a public address"), "{chain}");
    }
}
