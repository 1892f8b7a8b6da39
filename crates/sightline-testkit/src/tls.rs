//! A private certificate authority for TLS tests: a CA, and a server certificate it signed for
//! `127.0.0.1`, `::1` and `localhost`, made with the `openssl` command line in a temporary
//! directory (ECDSA P-256, valid two days), plus a client agent that trusts that CA.
//!
//! Dev-only. It must never write outside its temporary directory, and never make a
//! certificate a test did not ask for: each `TestCa` is its own authority, so a second one is
//! the "wrong CA" of a negative test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The extensions of the two certificates, in OpenSSL's config format: a CA that may sign
/// server certificates, and a server certificate for the loopback names a test hub answers on.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = sightline test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A CA and a server certificate it signed, as PEM files in a temporary directory that lives
/// as long as this value.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA's certificate: what a client passes as `--cacert` / `SIGHTLINE_CA_FILE`.
    pub ca: PathBuf,
    /// The server's certificate (for `serve --tls-cert`).
    pub cert: PathBuf,
    /// The server's private key (for `serve --tls-key`).
    pub key: PathBuf,
}

impl TestCa {
    /// Makes a new CA and a server certificate for 127.0.0.1, ::1 and localhost. Panics (with
    /// what to install) when the `openssl` command is missing: a TLS test cannot run without it.
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("a temporary directory for the test CA");
        let config = dir.path().join("openssl.cnf");
        std::fs::write(&config, OPENSSL_CONFIG).expect("write the openssl config");
        let p = |name: &str| dir.path().join(name);
        let (ca, ca_key, csr, cert, key) = (
            p("ca.pem"),
            p("ca.key"),
            p("server.csr"),
            p("server.pem"),
            p("server.key"),
        );
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-config"])
                .arg(&config)
                .args(["-extensions", "ca", "-days", "2"])
                .args(ec)
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca),
        );
        openssl(
            Command::new("openssl")
                .args(["req", "-new", "-config"])
                .arg(&config)
                .args(["-subj", "/CN=127.0.0.1"])
                .args(ec)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .args(["-set_serial", "2", "-days", "2", "-extfile"])
                .arg(&config)
                .args(["-extensions", "leaf", "-out"])
                .arg(&cert),
        );
        TestCa { dir, ca, cert, key }
    }

    /// The temporary directory the files are in (for a test's own extra files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A blocking HTTP agent (the product's own client stack) that trusts this CA besides the
    /// system's roots; status codes are answers, not errors. Requests give up after 60 s, like
    /// the kit's plain agent, so a test that goes wrong fails instead of hanging.
    pub fn agent(&self) -> ureq::Agent {
        let timeouts = sightline_forward::http::Timeouts {
            connect: None,
            global: Some(std::time::Duration::from_secs(60)),
        };
        sightline_forward::http::Trust::with_ca_file(Some(&self.ca))
            .and_then(|t| t.agent(&timeouts))
            .expect("the test CA is a usable trust anchor")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn openssl(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("the `openssl` command makes the test certificates: install openssl");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
