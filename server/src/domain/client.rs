//! Who is on the other end of a call, as far as the network tells.

/// The client a call came from: its address (behind a trusted load balancer,
/// the one the balancer forwarded), for audit, and the key under which
/// per-address limits count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The address as text, e.g. `198.51.100.7` or `2001:db8::1`.
    pub address: String,
    /// The address, or for IPv6 its /64 network.
    pub throttle_key: String,
}

impl Client {
    /// A caller whose address is not known (not a TCP connection).
    pub fn unknown() -> Self {
        Self {
            address: "unknown".into(),
            throttle_key: "unknown".into(),
        }
    }
}
