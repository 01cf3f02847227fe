//! Reading a TOML file into a raw configuration struct, with the key and
//! line of the first problem.

use super::*;

/// Where and why a TOML file could not be read into its raw struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlSyntax {
    /// The dotted key it is about, when there is one.
    pub key: Option<String>,
    pub line: usize,
    pub message: String,
}

/// Reads `text` into a raw configuration struct (which refuses unknown
/// keys), naming the key and line of the first problem. Both `rampart.toml`
/// and `edge.toml` are read this way.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlSyntax> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        TomlSyntax {
            key: (path != ".").then_some(path),
            line: inner.span().map_or(1, |s| {
                text.get(..s.start).map_or(0, |t| t.matches('\n').count()) + 1
            }),
            message: inner.message().trim().to_owned(),
        }
    })
}

impl From<TomlSyntax> for ConfigError {
    fn from(e: TomlSyntax) -> Self {
        ConfigError::Syntax {
            key: e.key,
            line: e.line,
            message: e.message,
        }
    }
}
