//! The enrollment URI that the portal shows as a QR code, and the activation
//! code that a person can type instead.
//!
//! URI form: `mfa://enroll?v=1&server=<URL>&code=<CODE>&key=<KEY>` where `CODE`
//! is the activation code without dashes and `KEY` is the server's Ed25519
//! public key, base64url without padding. The key lets the app check that it
//! talks to the server the portal meant; manual entry (code + URL) learns the
//! key from the enrollment response instead.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

/// Characters of an activation code: Crockford's base32 (no I, L, O, U).
pub const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in an activation code (50 bits of entropy).
pub const CODE_LENGTH: usize = 10;

/// Why an enrollment URI or a typed code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentUriError {
    /// Not an `mfa://enroll` URI.
    NotAnEnrollmentUri,
    /// The URI's version is not one this code understands.
    UnsupportedVersion(String),
    /// A required parameter is missing.
    Missing(&'static str),
    /// The server URL is not an http(s) URL.
    BadServerUrl,
    /// The server key is not a base64url 32-byte key.
    BadServerKey,
    /// The activation code does not have the right length or characters.
    BadActivationCode,
}

impl std::fmt::Display for EnrollmentUriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnEnrollmentUri => f.write_str("not an mfa://enroll URI"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported enrollment URI version {v:?}"),
            Self::Missing(name) => write!(f, "enrollment URI lacks the {name} parameter"),
            Self::BadServerUrl => f.write_str("server URL must be an http:// or https:// URL"),
            Self::BadServerKey => f.write_str("server key must be a base64url 32-byte key"),
            Self::BadActivationCode => write!(
                f,
                "activation code must be {CODE_LENGTH} letters and digits (dashes and spaces are ignored)"
            ),
        }
    }
}

impl std::error::Error for EnrollmentUriError {}

/// Normalises a typed activation code: drops dashes and spaces, upper-cases,
/// and reads the look-alikes O as 0 and I, L as 1 (as Crockford's base32 does).
pub fn normalize_activation_code(typed: &str) -> Result<String, EnrollmentUriError> {
    let mut code = String::with_capacity(CODE_LENGTH);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !CODE_ALPHABET.contains(&(c as u8)) || code.len() == CODE_LENGTH {
            return Err(EnrollmentUriError::BadActivationCode);
        }
        code.push(c);
    }
    if code.len() == CODE_LENGTH {
        Ok(code)
    } else {
        Err(EnrollmentUriError::BadActivationCode)
    }
}

/// Formats a normalised code for people to read: `K7Q2M-9XW4T`.
pub fn display_activation_code(code: &str) -> String {
    let (head, tail) = code.split_at(code.len() / 2);
    format!("{head}-{tail}")
}

/// What an app needs to enroll: where the server is, the activation code, and
/// (from a QR code) the server's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentUri {
    /// The server's gRPC URL, e.g. `https://mfa.example.com`.
    pub server_url: String,
    /// The normalised activation code.
    pub activation_code: String,
    /// The server's Ed25519 public key, when known.
    pub server_public_key: Option<[u8; 32]>,
}

impl EnrollmentUri {
    /// Builds from a typed code and URL (manual entry).
    pub fn manual(code: &str, server_url: &str) -> Result<Self, EnrollmentUriError> {
        Ok(Self {
            server_url: check_server_url(server_url)?,
            activation_code: normalize_activation_code(code)?,
            server_public_key: None,
        })
    }

    /// Parses the URI from a QR code.
    pub fn parse(uri: &str) -> Result<Self, EnrollmentUriError> {
        let parsed =
            url::Url::parse(uri.trim()).map_err(|_| EnrollmentUriError::NotAnEnrollmentUri)?;
        if parsed.scheme() != "mfa" || parsed.host_str() != Some("enroll") {
            return Err(EnrollmentUriError::NotAnEnrollmentUri);
        }
        let param = |name: &'static str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .ok_or(EnrollmentUriError::Missing(name))
        };
        let version = param("v")?;
        if version != "1" {
            return Err(EnrollmentUriError::UnsupportedVersion(version));
        }
        let key = URL_SAFE_NO_PAD
            .decode(param("key")?)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(EnrollmentUriError::BadServerKey)?;
        Ok(Self {
            server_public_key: Some(key),
            ..Self::manual(&param("code")?, &param("server")?)?
        })
    }

    /// Renders the URI to put in a QR code.
    pub fn to_uri(&self) -> String {
        let mut uri = url::Url::parse("mfa://enroll").expect("static URI parses");
        {
            let mut query = uri.query_pairs_mut();
            query
                .append_pair("v", "1")
                .append_pair("server", &self.server_url)
                .append_pair("code", &self.activation_code);
            if let Some(key) = &self.server_public_key {
                query.append_pair("key", &URL_SAFE_NO_PAD.encode(key));
            }
        }
        uri.into()
    }
}

/// Checks a server URL and returns its normal form: the URL as the URL
/// standard serialises it, without trailing slashes. The normal form checks
/// to itself, so a URL survives the QR code and manual entry unchanged.
fn check_server_url(server_url: &str) -> Result<String, EnrollmentUriError> {
    match url::Url::parse(server_url.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(url.as_str().trim_end_matches('/').to_owned())
        }
        _ => Err(EnrollmentUriError::BadServerUrl),
    }
}

/// The enrollment URI as an SVG image of its QR code (264 pixels or more
/// across), for a portal to show; `None` if the URI is too long for a QR code.
#[cfg(feature = "qr")]
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(264, 264)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnrollmentUri {
        EnrollmentUri {
            server_url: "https://mfa.example.com:8443".into(),
            activation_code: "K7Q2M9XW4T".into(),
            server_public_key: Some([9; 32]),
        }
    }

    #[test]
    fn uri_round_trips() {
        let uri = sample().to_uri();
        assert!(uri.starts_with("mfa://enroll?v=1&server=https"), "{uri}");
        assert_eq!(EnrollmentUri::parse(&uri), Ok(sample()));
    }

    #[test]
    fn typed_codes_are_forgiving_but_exact() {
        assert_eq!(
            normalize_activation_code("k7q2m-9xw4t").unwrap(),
            "K7Q2M9XW4T"
        );
        assert_eq!(
            normalize_activation_code(" 0oIl1 -22222").unwrap(),
            "0011122222"
        );
        assert!(normalize_activation_code("K7Q2M-9XW4").is_err());
        assert!(normalize_activation_code("K7Q2M-9XW4TT").is_err());
        assert!(normalize_activation_code("K7Q2M-9XW4U").is_err());
        assert!(normalize_activation_code("K7Q2M-9XW4é").is_err());
        assert_eq!(display_activation_code("K7Q2M9XW4T"), "K7Q2M-9XW4T");
    }

    #[test]
    fn server_urls_normalise_to_a_fixed_point() {
        // Found by the enrollment_uri fuzz target: "http://a/ /" became
        // "http://a/ ", which normalised again to "http://a".
        for typed in [
            "http://a/ /",
            "http://a//",
            " https://MFA.example.com:443/ ",
            "http://a\t.example/",
            "https://[::1]:50051/path/",
        ] {
            let first = EnrollmentUri::manual("K7Q2M9XW4T", typed).unwrap();
            let again = EnrollmentUri::manual("K7Q2M9XW4T", &first.server_url).unwrap();
            assert_eq!(again, first, "{typed:?}");
            let with_key = EnrollmentUri {
                server_public_key: Some([1; 32]),
                ..first
            };
            assert_eq!(EnrollmentUri::parse(&with_key.to_uri()), Ok(with_key));
        }
        assert_eq!(
            EnrollmentUri::manual("K7Q2M9XW4T", " https://MFA.example.com:443/ ")
                .unwrap()
                .server_url,
            "https://mfa.example.com"
        );
    }

    #[test]
    fn malformed_uris_are_rejected_with_a_reason() {
        let good = sample().to_uri();
        assert_eq!(
            EnrollmentUri::parse("https://example.com/?v=1"),
            Err(EnrollmentUriError::NotAnEnrollmentUri)
        );
        assert_eq!(
            EnrollmentUri::parse(&good.replace("v=1", "v=9")),
            Err(EnrollmentUriError::UnsupportedVersion("9".into()))
        );
        assert_eq!(
            EnrollmentUri::parse(&good.replace("&key=", "&kee=")),
            Err(EnrollmentUriError::Missing("key"))
        );
        assert_eq!(
            EnrollmentUri::parse(&good.replace("server=https", "server=ftp")),
            Err(EnrollmentUriError::BadServerUrl)
        );
        assert_eq!(
            EnrollmentUri::parse(&good.replace("&key=", "&key=AA")),
            Err(EnrollmentUriError::BadServerKey)
        );
        assert!(EnrollmentUri::manual("K7Q2M-9XW4T", "not a url").is_err());
    }
}
