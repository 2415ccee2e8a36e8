//! Browser sessions: a random id in an HTTP-only cookie, and where the
//! person stands in the sign-in, kept in memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::http::{header::COOKIE, HeaderMap};
use rand::{rngs::OsRng, RngCore};

use crate::users::DemoUser;

const COOKIE_NAME: &str = "demo_session";

/// Where a signed-in-by-password person stands.
#[derive(Debug, Clone)]
pub enum Step {
    /// Setting up the app: the QR code of this enrollment is shown.
    Enrolling {
        enrollment_id: String,
        qr_uri: String,
        manual_code: String,
        server_url: String,
    },
    /// Waiting for the phone to approve this challenge.
    Approving {
        challenge_id: String,
        number: String,
    },
    /// Second factor done; the terms of use are still to accept.
    Terms,
    /// Signed in.
    SignedIn,
}

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: &'static DemoUser,
    pub step: Step,
}

/// All sessions, by id.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

impl Sessions {
    /// Stores a new session and returns the `Set-Cookie` value for it.
    pub fn create(&self, session: Session) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.lock().insert(id.clone(), session);
        format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clearing_cookie() -> &'static str {
        "demo_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    }

    /// The session of the request, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = session_id(headers)?;
        self.lock().get(&id).cloned()
    }

    /// Moves the request's session to `step`; false without a session.
    pub fn set_step(&self, headers: &HeaderMap, step: Step) -> bool {
        let Some(id) = session_id(headers) else {
            return false;
        };
        match self.lock().get_mut(&id) {
            Some(session) => {
                session.step = step;
                true
            }
            None => false,
        }
    }

    /// Ends the request's session.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.lock().remove(&id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}
