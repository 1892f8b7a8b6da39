//! Tokens and what they grant: the token table (the single `--token`, `--token-file` lines and
//! the config file's `[[tokens]]`), roles per token, and constant-time comparison.
//!
//! This module must never log or return a token's value (only its name), and never accept a
//! blank or short token.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

pub use sightline_core::Role;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("token file {path}, line {line}: {message}")]
    TokenFile {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What a presented token is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A name for logs and the audit trail (never the token itself).
    pub name: String,
    pub roles: BTreeSet<Role>,
}

impl Grant {
    pub fn allows(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }
}

/// One token as the config file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub token: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Every token the hub accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    entries: Vec<(String, Grant)>,
}

impl TokenTable {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a token (files and config refuse ones shorter than 8 characters; see
    /// [`TokenTable::add_checked`]).
    pub fn add(&mut self, token: &str, roles: &[Role], name: &str) -> Result<(), SecurityError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(SecurityError::Invalid(format!("token `{name}` is empty")));
        }
        if roles.is_empty() {
            return Err(SecurityError::Invalid(format!(
                "token `{name}` has no role; give it read, ingest and/or admin"
            )));
        }
        self.entries.retain(|(t, _)| t != token);
        self.entries.push((
            token.to_string(),
            Grant {
                name: name.to_string(),
                roles: roles.iter().copied().collect(),
            },
        ));
        Ok(())
    }

    /// Like [`TokenTable::add`], refusing tokens shorter than 8 characters (too easy to guess).
    pub fn add_checked(
        &mut self,
        token: &str,
        roles: &[Role],
        name: &str,
    ) -> Result<(), SecurityError> {
        if token.trim().len() < 8 {
            return Err(SecurityError::Invalid(format!(
                "token `{name}` is shorter than 8 characters; use a long random string"
            )));
        }
        self.add(token, roles, name)
    }

    /// Adds tokens from the config file's `[[tokens]]` tables.
    pub fn add_specs(&mut self, specs: &[TokenSpec]) -> Result<(), SecurityError> {
        for (i, spec) in specs.iter().enumerate() {
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("config#{}", i + 1));
            let roles = parse_roles(&spec.roles.join(","))
                .map_err(|m| SecurityError::Invalid(format!("token `{name}`: {m}")))?;
            self.add_checked(&spec.token, &roles, &name)?;
        }
        Ok(())
    }

    /// Reads a token file: one token per line, `TOKEN ROLES [NAME]`, roles comma-separated,
    /// `#` starts a comment.
    pub fn load_file(&mut self, path: &Path) -> Result<(), SecurityError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecurityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.parse_file(&text, &path.display().to_string())
    }

    pub fn parse_file(&mut self, text: &str, path: &str) -> Result<(), SecurityError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: String| SecurityError::TokenFile {
                path: path.to_string(),
                line: i + 1,
                message,
            };
            let mut parts = line.split_whitespace();
            let (Some(token), Some(roles)) = (parts.next(), parts.next()) else {
                return Err(err(
                    "expected `TOKEN ROLES [NAME]`, e.g. `s3cr3t-t0ken read,ingest laptop`".into(),
                ));
            };
            let name = parts
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{path}:{}", i + 1));
            let roles = parse_roles(roles).map_err(err)?;
            self.add_checked(token, &roles, &name)
                .map_err(|e| SecurityError::TokenFile {
                    path: path.to_string(),
                    line: i + 1,
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The grants, in the order they were added (names and roles only, never a token).
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.entries.iter().map(|(_, g)| g)
    }

    /// Removes every token named `name`; true when one was there.
    pub fn remove_named(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, g)| g.name != name);
        self.entries.len() != before
    }

    /// The grant of a presented token. Compares against every entry in constant time per
    /// entry, so timing does not tell which prefix matched.
    pub fn check(&self, presented: &str) -> Option<&Grant> {
        let mut found = None;
        for (token, grant) in &self.entries {
            if same_token(token, presented) {
                found = Some(grant);
            }
        }
        found
    }
}

pub fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    text.split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            Role::parse(r).ok_or_else(|| format!("role `{r}` is not one of read, ingest, admin"))
        })
        .collect()
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from timings.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
