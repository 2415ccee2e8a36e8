//! Push delivery. The service hands each notification to a [`PushGateway`];
//! the one shipped here records notifications (log, and optionally a JSON-lines
//! file) so that the pull path carries the flow until real providers are wired.

use crate::{
    domain::now_ms,
    model::{Device, PushPlatform},
    telemetry::metrics,
};
use async_trait::async_trait;
use mfa_proto::push::PushNotice;
use std::{io::Write, path::PathBuf, sync::Mutex, time::Duration};

/// Delivers notices to devices.
#[async_trait]
pub trait PushGateway: Send + Sync + 'static {
    /// Hands a notice for one device to the gateway. It is awaited on the
    /// request path, so a gateway that talks to a provider must queue here and
    /// deliver in the background. Failures are the gateway's to log: the device
    /// can still fetch the challenge by polling. `created_at_ms` is when the
    /// challenge was created, for the time-to-provider metric.
    async fn notify(&self, device: &Device, notice: &PushNotice, created_at_ms: i64);
}

/// Records notifications instead of sending them.
#[derive(Debug, Default)]
pub struct RecordingGateway {
    file: Option<Mutex<std::fs::File>>,
}

impl RecordingGateway {
    /// Records to the log, and to `path` as JSON lines when given.
    pub fn new(path: Option<PathBuf>) -> std::io::Result<Self> {
        let file = path
            .map(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            })
            .transpose()?;
        Ok(Self {
            file: file.map(Mutex::new),
        })
    }
}

#[async_trait]
impl PushGateway for RecordingGateway {
    async fn notify(&self, device: &Device, notice: &PushNotice, created_at_ms: i64) {
        let payload = match device.push_platform {
            PushPlatform::Apns => notice.to_apns_payload(),
            PushPlatform::Fcm => notice.to_fcm_data(),
            // The domain does not notify pull-only devices.
            PushPlatform::None => return,
        };
        tracing::info!(
            challenge_id = %notice.challenge_id,
            device_id = %device.id,
            platform = device.push_platform.as_str(),
            "push recorded"
        );
        let since_creation = (now_ms() - created_at_ms).max(0) as u64;
        metrics::push_sent(
            device.push_platform.as_str(),
            "recorded",
            Duration::from_millis(since_creation),
        );
        if let Some(file) = &self.file {
            let line = serde_json::json!({
                "device_id": device.id,
                "platform": device.push_platform.as_str(),
                "payload": payload,
            });
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = writeln!(file, "{line}") {
                tracing::warn!(%error, "could not append to the push log");
            }
        }
    }
}
