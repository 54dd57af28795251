//! The client's address behind proxies. Only a peer the operator trusts (`trusted_proxies`)
//! may say, in `X-Forwarded-For` or `Forwarded`, whom it forwards for; from anyone else those
//! headers are ignored, since a client can write them as it likes. The address is what the
//! brute-force limits count, what sessions record and what the activity trail shows.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// Addresses and CIDR blocks (`10.0.0.0/8`, `::1`); none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or one with `/n`.
fn block(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.trim().split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
        None => {
            let a = s.trim().parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr.to_canonical(), bits))
}

fn contains((net, bits): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// An address as forwarding headers write it: bare, `"[v6]:port"`, `v4:port`, quoted.
fn forwarded_address(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

impl TrustedProxies {
    /// The list as configured; an entry that is neither an address nor a block is named.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|s| block(s).ok_or_else(|| format!("trusted_proxies: {s:?} is not an IP address or CIDR block")))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| contains(*b, ip))
    }

    /// Who the client is: the peer, unless the peer is trusted; then, walking the forwarded
    /// chain from the right (`X-Forwarded-For`, else `Forwarded`'s `for=`), the first address
    /// that is not itself a trusted proxy. An entry that cannot be read stops the walk at the
    /// last address that could.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let values = |name: &str| -> Vec<String> {
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
        };
        let mut chain: Vec<Option<IpAddr>> =
            values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(forwarded_address).collect();
        if chain.is_empty() {
            chain = values("forwarded")
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(|element| {
                    element.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then(|| forwarded_address(v))
                    })
                })
                .collect();
        }
        let mut client = peer;
        for hop in chain.into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(t.client_address(ip("10.0.0.1"), &xff), ip("198.51.100.7"), "a spoofed left part is ignored");
        assert_eq!(t.client_address(ip("192.0.2.1"), &xff), ip("192.0.2.1"), "an untrusted peer's header is ignored");
        assert_eq!(t.client_address(ip("::1"), &headers(&[])), ip("::1"));
        let all_proxies = headers(&[("x-forwarded-for", "10.9.9.9"), ("x-forwarded-for", "10.8.8.8")]);
        assert_eq!(t.client_address(ip("10.0.0.1"), &all_proxies), ip("10.9.9.9"));
        let fwd = headers(&[("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8::17]:4711""#)]);
        assert_eq!(t.client_address(ip("::ffff:10.0.0.2"), &fwd), ip("2001:db8::17"));
        let garbage = headers(&[("x-forwarded-for", "nonsense, 198.51.100.7")]);
        assert_eq!(t.client_address(ip("10.0.0.1"), &garbage), ip("198.51.100.7"));
        let port = headers(&[("x-forwarded-for", "198.51.100.7:5555")]);
        assert_eq!(t.client_address(ip("10.0.0.1"), &port), ip("198.51.100.7"));
    }

    #[test]
    fn blocks_parse_and_a_bad_one_is_named() {
        assert!(TrustedProxies::parse(&["127.0.0.1/32".into(), "fd00::/8".into(), "192.168.1.1".into()]).is_ok());
        let e = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(TrustedProxies::parse(&["proxy.internal".into()]).is_err());
        let everyone = TrustedProxies::parse(&["0.0.0.0/0".into()]).unwrap();
        assert!(everyone.trusts(ip("8.8.8.8")));
    }
}
