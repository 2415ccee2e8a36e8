//! The demo's user list: the first factor, checked by the portal itself.

/// A user of the demo portal.
#[derive(Debug, PartialEq, Eq)]
pub struct DemoUser {
    /// The portal's identifier, as the MFA service knows the user.
    pub id: &'static str,
    /// The e-mail to sign in with, also shown in the app.
    pub email: &'static str,
}

/// The demo's one password, printed on the sign-in page.
const DEMO_PASSWORD: &str = "demo";

/// Everyone who can sign in.
pub const USERS: &[DemoUser] = &[
    DemoUser {
        id: "user-hanako",
        email: "hanako@example.jp",
    },
    DemoUser {
        id: "user-taro",
        email: "taro@example.jp",
    },
    DemoUser {
        id: "user-alice",
        email: "alice@example.com",
    },
];

/// The user with this e-mail and password, if they match.
pub fn check_password(email: &str, password: &str) -> Option<&'static DemoUser> {
    USERS
        .iter()
        .find(|user| user.email.eq_ignore_ascii_case(email.trim()))
        .filter(|_| password == DEMO_PASSWORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_signs_in() {
        assert_eq!(
            check_password(" Hanako@example.jp", "demo"),
            Some(&USERS[0])
        );
        assert_eq!(check_password("hanako@example.jp", "wrong"), None);
        assert_eq!(check_password("nobody@example.jp", "demo"), None);
    }
}
