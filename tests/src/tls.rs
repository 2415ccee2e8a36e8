//! A certificate authority made for one test: the server's certificate for
//! 127.0.0.1 and client certificates for portals and administrators.

use std::path::{Path, PathBuf};

/// A CA's key and self-signed certificate.
pub struct TestPki {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// A certificate the CA issued, with its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`TestPki::write_server_files`] put the server's files.
pub struct ServerFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl TestPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { key, cert }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Issued {
        self.server_for(&["127.0.0.1", "localhost"])
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_for(&self, names: &[&str]) -> Issued {
        self.issue(
            names.iter().map(|name| (*name).to_owned()).collect(),
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate named `name`.
    pub fn client(&self, name: &str) -> Issued {
        self.issue(
            vec![name.into()],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(&self, names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes a server certificate and key, and this CA's certificate (as
    /// the client CA), into `dir`.
    pub fn write_server_files(&self, dir: &Path) -> ServerFiles {
        std::fs::create_dir_all(dir).unwrap();
        let server = self.server();
        let files = ServerFiles {
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            ca_file: dir.join("client-ca.pem"),
        };
        std::fs::write(&files.cert_file, server.cert_pem).unwrap();
        std::fs::write(&files.key_file, server.key_pem).unwrap();
        std::fs::write(&files.ca_file, self.ca_pem()).unwrap();
        files
    }
}
