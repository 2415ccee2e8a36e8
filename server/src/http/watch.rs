//! The HTTP/JSON face of watches ([`crate::domain::follow`]): server-sent
//! events, and long polls (`?wait=30s`) that answer once the state leaves
//! the one waited out, or at the end of the wait with the state then.

use super::{error::ApiError, extract::WaitQuery};
use crate::{
    api::portal::Updates,
    domain::{self, Reason},
};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use std::{convert::Infallible, future::Future};
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

/// A read (`read`) or, with `wait` in the query, a long poll (on the watch
/// `watch` opens): the first update whose state (`state_of`) is not the one
/// waited out (`while_state`, one of `names`; by default `initial`), or the
/// latest one when the wait ends first (or the watch ends early: its longest
/// duration, a shutdown). The first update, the current state, is always
/// awaited, however short the wait. Only the future used is ever polled.
pub async fn read_or_wait<T>(
    query: &WaitQuery,
    initial: &'static str,
    names: &[&'static str],
    state_of: fn(&T) -> &'static str,
    read: impl Future<Output = domain::Result<T>>,
    watch: impl Future<Output = domain::Result<Updates<T>>>,
) -> Result<T, ApiError> {
    let Some(wait) = query.wait else {
        return Ok(read.await?);
    };
    let waited_out = match &query.while_state {
        None => initial,
        Some(state) => names.iter().copied().find(|n| n == state).ok_or_else(|| {
            ApiError::new(
                Reason::InvalidArgument,
                format!("while_state {state:?} is not one of {}", names.join(", ")),
            )
        })?,
    };
    let mut updates = watch.await?;
    let deadline = Instant::now() + wait;
    let mut latest = match updates.next().await {
        Some(first) => first?,
        None => return Err(domain::Error::Internal("a watch without a state".into()).into()),
    };
    while state_of(&latest) == waited_out {
        match tokio::time::timeout_at(deadline, updates.next()).await {
            Ok(Some(Ok(value))) => latest = value,
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    Ok(latest)
}
