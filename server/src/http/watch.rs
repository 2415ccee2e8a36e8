//! The HTTP/JSON face of watches ([`crate::domain::follow`]): server-sent
//! events, and long polls (`?wait=30s`) that answer once the state leaves
//! the one waited out, or at the end of the wait with the state then.

use super::{error::ApiError, extract::WaitQuery};
use crate::api::portal::Updates;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use std::{convert::Infallible, time::Duration};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};

/// The updates as server-sent events: each state as an `event` named
/// `name` with the JSON object as its data, or a last `error` event with the
/// JSON error (the watch's longest duration reached, the server stopping).
/// The stream ends after a terminal state.
pub fn events<T, J>(
    updates: Updates<T>,
    name: &'static str,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    T: Send + 'static,
    J: Serialize + From<T>,
{
    let events = updates.map(move |update| {
        let event = match update {
            Ok(value) => Event::default().event(name).data(to_json(&J::from(value))),
            Err(error) => Event::default()
                .event("error")
                .data(to_json(&ApiError::from(error).body())),
        };
        Ok(event)
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The state to wait out: `while_state` if given (one of `names`), else
/// `first`, the object's initial state.
pub fn state_to_wait_out(
    query: &WaitQuery,
    first: &'static str,
    names: &[&'static str],
) -> Result<String, ApiError> {
    match &query.while_state {
        None => Ok(first.to_owned()),
        Some(state) if names.contains(&state.as_str()) => Ok(state.clone()),
        Some(state) => Err(ApiError::new(
            crate::domain::Reason::InvalidArgument,
            format!("while_state {state:?} is not one of {}", names.join(", ")),
        )),
    }
}

/// The first update whose state (`state_of`) is not `waited_out`, or the
/// latest one when `wait` ends first (or the watch ends early: its longest
/// duration, a shutdown). The first update, the current state, is always
/// awaited, however short the wait.
pub async fn long_poll<T>(
    mut updates: Updates<T>,
    wait: Duration,
    waited_out: &str,
    state_of: fn(&T) -> &'static str,
) -> Result<T, ApiError> {
    let deadline = Instant::now() + wait;
    let mut latest = match updates.next().await {
        Some(first) => first?,
        None => {
            return Err(crate::domain::Error::Internal("a watch without a state".into()).into())
        }
    };
    while state_of(&latest) == waited_out {
        match tokio::time::timeout_at(deadline, updates.next()).await {
            Ok(Some(Ok(value))) => latest = value,
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    Ok(latest)
}
