//! Error messages for people.

/// An error followed by its causes (`client error (Connect): tcp connect
/// error: Connection refused`): HTTP clients' own messages alone rarely say
/// what failed.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
