//! Whether the service can serve: NOT_SERVING while migrations run and while
//! the database cannot be reached, SERVING otherwise. The same state feeds the
//! gRPC health service, `/healthz`, and the `mfa_health_serving` gauge.

use crate::domain::Service;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use tonic_health::{server::HealthReporter, ServingStatus};

/// gRPC services whose health is reported (plus "" for the whole server).
const SERVICES: &[&str] = &[
    "",
    "mfa.v1.PortalService",
    "mfa.v1.DeviceService",
    "mfa.v1.AdminService",
];

/// The shared health state.
#[derive(Clone)]
pub struct Health {
    serving: Arc<AtomicBool>,
    reporter: HealthReporter,
}

impl Health {
    /// Starts NOT_SERVING (quietly: that is the normal state until the
    /// migrations have run).
    pub async fn new(reporter: HealthReporter) -> Self {
        let health = Self {
            serving: Arc::new(AtomicBool::new(false)),
            reporter,
        };
        health.report(false).await;
        health
    }

    /// Whether the service is serving now.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// Sets the state everywhere it is reported.
    pub async fn set(&self, serving: bool) {
        if self.serving.swap(serving, Ordering::Relaxed) == serving {
            return;
        }
        self.report(serving).await;
        if serving {
            tracing::info!("serving");
        } else {
            tracing::warn!("not serving");
        }
    }

    /// Publishes `serving` on gRPC health and in the metrics.
    async fn report(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in SERVICES {
            self.reporter.set_service_status(*name, status).await;
        }
        super::metrics::set_serving(serving);
    }

    /// Checks the database now and reports the result.
    pub async fn check(&self, service: &Service) {
        let reachable = service.store().ping().await;
        if let Err(error) = &reachable {
            tracing::warn!(%error, "database unreachable");
        }
        self.set(reachable.is_ok()).await;
    }

    /// Checks the database every `interval` until the service shuts down,
    /// then reports NOT_SERVING.
    pub async fn monitor(self, service: Service, interval: Duration) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => self.check(&service).await,
                () = service.shutting_down() => {
                    self.set(false).await;
                    return;
                }
            }
        }
    }
}
