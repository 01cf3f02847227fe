//! Build contexts as the CLI sends them: a directory packed as a tar
//! archive, honouring its `.dockerignore` the way the Docker CLI does. The
//! platform checks what arrives (`rampart_runtime::context::check`); this
//! side only decides what leaves the user's machine.
//!
//! Patterns are globs over slash-separated paths relative to the context
//! (`*` stays within one component, `**` spans any number), a leading `!`
//! re-includes, and the last matching pattern wins. A pattern that matches
//! a directory excludes everything under it. `Dockerfile` and
//! `.dockerignore` are always sent, as the engine needs them.

use std::path::{Path, PathBuf};

use globset::GlobMatcher;

/// Why a context could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("the build context {0} has no Dockerfile")]
    NoDockerfile(PathBuf),
    #[error("the build context is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(".dockerignore line {line}: {message}")]
    Ignore { line: usize, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct Rule {
    matcher: GlobMatcher,
    include: bool,
}

/// The parsed `.dockerignore` of a context.
pub struct Ignore {
    rules: Vec<Rule>,
}

impl std::fmt::Debug for Ignore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ignore")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Ignore {
    /// Parses the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Self, PackError> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (include, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| PackError::Ignore {
                    line: n + 1,
                    message: e.kind().to_string(),
                })?;
            rules.push(Rule {
                matcher: glob.compile_matcher(),
                include,
            });
        }
        Ok(Self { rules })
    }

    /// Whether `path` (relative, slash-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        if path == "Dockerfile" || path == ".dockerignore" {
            return false;
        }
        let mut excluded = false;
        for rule in &self.rules {
            if matches_self_or_parent(&rule.matcher, path) {
                excluded = !rule.include;
            }
        }
        excluded
    }
}

/// `./a//b/` → `a/b`, as the Docker CLI cleans patterns.
fn clean(pattern: &str) -> String {
    pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn matches_self_or_parent(matcher: &GlobMatcher, path: &str) -> bool {
    if matcher.is_match(path) {
        return true;
    }
    path.match_indices('/')
        .any(|(i, _)| matcher.is_match(&path[..i]))
}

/// Packs `dir` into a tar archive, at most `limit` bytes of file content.
pub fn pack(dir: &Path, limit: u64) -> Result<Vec<u8>, PackError> {
    if !dir.is_dir() {
        return Err(PackError::NotADirectory(dir.to_owned()));
    }
    if !dir.join("Dockerfile").is_file() {
        return Err(PackError::NoDockerfile(dir.to_owned()));
    }
    fn read(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
        move |source| PackError::Read {
            path: path.to_owned(),
            source,
        }
    }
    let ignore_path = dir.join(".dockerignore");
    let ignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => Ignore::parse(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::parse("")?,
        Err(e) => return Err(read(&ignore_path)(e)),
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&full)
            .map_err(read(&full))?
            .collect::<Result<_, _>>()
            .map_err(read(&full))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = rel.join(entry.file_name());
            let Some(text) = name.to_str().map(|s| s.replace('\\', "/")) else {
                continue;
            };
            if ignore.excludes(&text) {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(read(&path))?;
            if meta.is_dir() {
                builder.append_dir(&name, &path).map_err(read(&path))?;
                stack.push(name);
            } else if meta.is_file() || meta.file_type().is_symlink() {
                total += meta.len();
                if total > limit {
                    return Err(PackError::TooLarge { limit });
                }
                builder
                    .append_path_with_name(&path, &name)
                    .map_err(read(&path))?;
            }
        }
    }
    builder.into_inner().map_err(read(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(archive: &[u8]) -> Vec<String> {
        let mut reader = tar::Archive::new(archive);
        let mut out: Vec<String> = reader
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn dockerignore_rules_follow_the_docker_cli() {
        let ignore =
            Ignore::parse("# comment\n*.log\n/target\nsecrets/\n**/*.tmp\n!keep.log\n").unwrap();
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("keep.log"));
        assert!(!ignore.excludes("sub/a.log"), "* stays in one component");
        assert!(ignore.excludes("target/debug/x"));
        assert!(ignore.excludes("secrets/key"));
        assert!(ignore.excludes("deep/er/x.tmp"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(!Ignore::parse("*").unwrap().excludes("Dockerfile"));
    }

    #[test]
    fn a_broken_dockerignore_names_its_line_and_packs_nothing() {
        let err = Ignore::parse("ok\n# fine\n[unclosed\n").unwrap_err();
        assert!(
            err.to_string().starts_with(".dockerignore line 3:"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), b"a\n[b\n").unwrap();
        assert!(matches!(
            pack(dir.path(), 1 << 20),
            Err(PackError::Ignore { line: 2, .. })
        ));
        std::fs::write(dir.path().join(".dockerignore"), [0xff, 0xfe, b'\n']).unwrap();
        assert!(pack(dir.path(), 1 << 20).is_err(), "not UTF-8");
    }

    #[test]
    fn pack_honours_dockerignore_and_needs_a_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let err = pack(dir.path(), 1 << 20).unwrap_err();
        assert!(matches!(err, PackError::NoDockerfile(_)), "{err}");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "secret.txt\ncache\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "x").unwrap();
        std::fs::write(dir.path().join("app"), "binary").unwrap();
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        std::fs::write(dir.path().join("cache/big"), "y").unwrap();
        let archive = pack(dir.path(), 1 << 20).unwrap();
        assert_eq!(names(&archive), [".dockerignore", "Dockerfile", "app"]);
        assert!(matches!(
            pack(dir.path(), 4),
            Err(PackError::TooLarge { .. })
        ));
    }
}
