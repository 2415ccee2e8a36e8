//! Where a call comes from. Behind a load balancer every call's TCP peer is
//! the balancer, so the address that audit, logs and per-address limits use
//! is taken from the balancer's `forwarded` (RFC 7239) or `x-forwarded-for`
//! header, but only when the TCP peer is one of `trusted_proxies`: anyone
//! else could write those headers to pass as someone else.
//!
//! The forwarded chain is read from the right (the hop nearest to us) to the
//! left, skipping trusted proxies; the first address that is not one is the
//! client. Addresses further left were written by the client or by proxies
//! we do not know, and are not believed.

use http::{HeaderMap, Request};
use ipnet::IpNet;
use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
    task::{Context, Poll},
};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// The address a call came from, as [`ClientAddressLayer`] resolved it
/// (in the request's extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The key under which per-address limits count this address: the
    /// address itself for IPv4, its /64 network for IPv6 (one subscriber's
    /// allocation, in which a client can pick any address).
    pub fn throttle_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let [a, b, c, d, ..] = v6.segments();
                    format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.fmt(f),
                None => v6.fmt(f),
            },
            v4 => v4.fmt(f),
        }
    }
}

/// The networks whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trusts `networks` (the `trusted_proxies` setting).
    pub fn new(networks: &[IpNet]) -> Self {
        Self(networks.iter().map(IpNet::trunc).collect())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = unmapped(address);
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client address of a call from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddress {
        let peer = unmapped(peer);
        if !self.trusts(peer) {
            return ClientAddress(peer);
        }
        // `forwarded` is the standard; a balancer that writes it is read by
        // it alone. Several header lines form one list, in order.
        let chain: Vec<Hop> = if headers.contains_key(http::header::FORWARDED) {
            headers
                .get_all(http::header::FORWARDED)
                .iter()
                .flat_map(|line| line.to_str().unwrap_or("").split(','))
                .map(forwarded_for)
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|line| line.to_str().unwrap_or("").split(','))
                .map(|element| parse_node(element.trim()))
                .collect()
        };
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Hop::Address(address) => {
                    client = unmapped(*address);
                    if !self.trusts(client) {
                        break;
                    }
                }
                // An element we cannot read (obfuscated, `unknown`, junk):
                // what lies beyond it is not known, so the last trusted hop
                // before it is the best we have.
                Hop::Unknown => break,
            }
        }
        ClientAddress(client)
    }
}

/// One element of a forwarded chain.
enum Hop {
    Address(IpAddr),
    Unknown,
}

/// The `for=` node of one `forwarded` element (`for=192.0.2.60;proto=https`).
fn forwarded_for(element: &str) -> Hop {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map_or(Hop::Unknown, |(_, value)| parse_node(value.trim()))
}

/// A node: `192.0.2.60`, `192.0.2.60:4711`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1` (as `x-forwarded-for` writes IPv6), `unknown`, `_hidden`.
fn parse_node(node: &str) -> Hop {
    let node = node.trim_matches('"');
    if let Ok(address) = node.parse::<IpAddr>() {
        return Hop::Address(address);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Hop::Address(socket.ip());
    }
    match node.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        Some((v6, _)) => v6.parse().map_or(Hop::Unknown, Hop::Address),
        None => Hop::Unknown,
    }
}

/// An IPv4 address that arrived as IPv4-mapped IPv6 (a dual-stack listener),
/// as IPv4, so that it matches IPv4 networks.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The TCP peer of a request, with or without TLS.
pub fn remote_addr<B>(request: &Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

/// Puts each call's [`ClientAddress`] into its extensions.
#[derive(Debug, Clone, Default)]
pub struct ClientAddressLayer {
    trusted: TrustedProxies,
}

impl ClientAddressLayer {
    /// Resolves addresses with `trusted` proxies.
    pub fn new(trusted: TrustedProxies) -> Self {
        Self { trusted }
    }
}

impl<S> Layer<S> for ClientAddressLayer {
    type Service = ResolveClientAddress<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientAddress {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

/// See [`ClientAddressLayer`].
#[derive(Debug, Clone)]
pub struct ResolveClientAddress<S> {
    inner: S,
    trusted: TrustedProxies,
}

impl<S, B> Service<Request<B>> for ResolveClientAddress<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(peer) = remote_addr(&request) {
            let client = self.trusted.resolve(peer.ip(), request.headers());
            request.extensions_mut().insert(client);
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(trusted: &[&str], peer: &str, headers: &[(&str, &str)]) -> String {
        let networks: Vec<IpNet> = trusted
            .iter()
            .map(|n| n.parse().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)))
            .collect::<Result<_, _>>()
            .unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        TrustedProxies::new(&networks)
            .resolve(peer.parse().unwrap(), &map)
            .to_string()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let forged = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ];
        assert_eq!(resolve(&[], "198.51.100.7", &forged), "198.51.100.7");
        assert_eq!(
            resolve(&["10.0.0.0/8"], "198.51.100.7", &forged),
            "198.51.100.7"
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "192.0.2.1"];
        // The client wrote a fake first element; our balancer appended the
        // address it saw.
        let xff = [("x-forwarded-for", "1.2.3.4, 198.51.100.7")];
        assert_eq!(resolve(&trusted, "10.1.2.3", &xff), "198.51.100.7");
        // Two trusted hops (a CDN edge we trust, then our balancer).
        let xff = [("x-forwarded-for", "198.51.100.7, 192.0.2.1")];
        assert_eq!(resolve(&trusted, "10.1.2.3", &xff), "198.51.100.7");
        // Header lines are one list.
        let lines = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.9.9.9"),
        ];
        assert_eq!(resolve(&trusted, "10.1.2.3", &lines), "198.51.100.7");
        // A trusted peer that forwarded nothing is the client itself.
        assert_eq!(resolve(&trusted, "10.1.2.3", &[]), "10.1.2.3");
    }

    #[test]
    fn forwarded_is_read_with_ports_quotes_and_ipv6() {
        let trusted = ["10.0.0.0/8"];
        let header = [(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.5",
        )];
        assert_eq!(resolve(&trusted, "10.0.0.9", &header), "2001:db8:cafe::17");
        let header = [("forwarded", "for=198.51.100.7:4711;by=10.0.0.9")];
        assert_eq!(resolve(&trusted, "10.0.0.9", &header), "198.51.100.7");
        // `forwarded` wins over `x-forwarded-for` when both are sent.
        let both = [
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(resolve(&trusted, "10.0.0.9", &both), "198.51.100.7");
    }

    #[test]
    fn unreadable_hops_stop_the_walk_at_the_last_trusted_one() {
        let trusted = ["10.0.0.0/8"];
        let hidden = [("forwarded", "for=198.51.100.7, for=_hidden, for=10.0.0.5")];
        assert_eq!(resolve(&trusted, "10.0.0.9", &hidden), "10.0.0.5");
        let junk = [("x-forwarded-for", "198.51.100.7, not-an-address")];
        assert_eq!(resolve(&trusted, "10.0.0.9", &junk), "10.0.0.9");
    }

    #[test]
    fn mapped_addresses_match_ipv4_networks_and_ipv6_throttles_by_network() {
        let header = [("x-forwarded-for", "198.51.100.7")];
        assert_eq!(
            resolve(&["10.0.0.0/8"], "::ffff:10.0.0.9", &header),
            "198.51.100.7"
        );
        let v6 = ClientAddress("2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(v6.throttle_key(), "2001:db8:1:2::/64");
        let v4 = ClientAddress("::ffff:198.51.100.7".parse().unwrap());
        assert_eq!(
            (v4.to_string(), v4.throttle_key()),
            ("198.51.100.7".into(), "198.51.100.7".into())
        );
    }
}
