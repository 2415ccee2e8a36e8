//! Who is on the other end of a call, as far as the network tells.

use crate::client_address::ClientAddress;

/// The client a call came from (behind a trusted load balancer, the address
/// the balancer forwarded). It is a copy of the address alone: the text for
/// audit and the per-address limits' key are made only where a rule needs
/// them, not on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(Option<ClientAddress>);

impl Client {
    /// A caller at `address`, or of unknown address (not a TCP connection).
    pub fn new(address: Option<ClientAddress>) -> Self {
        Self(address)
    }

    /// A caller whose address is not known.
    pub fn unknown() -> Self {
        Self(None)
    }

    /// The address as text, e.g. `198.51.100.7` or `2001:db8::1`.
    pub fn address(&self) -> String {
        self.0
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    }

    /// The key per-address limits count it under: the address, or for IPv6
    /// its /64 network.
    pub fn throttle_key(&self) -> String {
        self.0
            .map_or_else(|| "unknown".to_owned(), |a| a.throttle_key())
    }
}
