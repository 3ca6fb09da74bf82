//! [`FleetChecks`]: the connect-phase checks that need state shared by every replica (flapping
//! counted across the fleet, fleet-wide connection caps). Async, unlike filters, because they ask
//! a shared store (Redis); the connect phase awaits them once per CONNECT, never per packet.
//! A trait so the session layer does not know which store answers.

use std::net::IpAddr;

use super::bans::BoxFuture;
use super::Deny;

/// Releases a fleet-wide connection slot when dropped (the session ended).
pub trait SlotGuard: Send {}

pub trait FleetChecks: Send + Sync + 'static {
    /// A CONNECT the local filters allowed, before authentication: counts it against the
    /// fleet-wide flapping thresholds. `Err` refuses the connection.
    fn on_connect(&self, ip: IpAddr, client_id: &str) -> BoxFuture<Result<(), Deny>>;

    /// Authentication refused a CONNECT for bad credentials: counted across the fleet per
    /// address and username (`flapping.auth_failure_max_count`).
    fn on_auth_failure(&self, _ip: IpAddr, _username: Option<&str>) -> BoxFuture<()> {
        Box::pin(async {})
    }

    /// An authenticated client: takes a fleet-wide connection slot for its client id and
    /// username (when caps are configured). The guard gives the slot back.
    fn claim(
        &self,
        client_id: &str,
        username: Option<&str>,
    ) -> BoxFuture<Result<Option<Box<dyn SlotGuard>>, Deny>>;
}
