//! Build contexts as they arrive: the check of an uploaded tar archive
//! before anything builds from it (bounded work, only files, directories
//! and links, a regular `Dockerfile`, the app manifest read), and the
//! images a Dockerfile builds from. The CLI packs contexts with
//! `rampart_client::context::pack`.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an uploaded build context was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("the build context {0} has no Dockerfile")]
    NoDockerfile(PathBuf),
    #[error("the build context is not a tar archive: {0}")]
    NotTar(String),
}

/// Checks that `archive` is a readable tar archive with a `Dockerfile` at
/// its root, holding only files, directories and links.
///
/// What an archive unpacks to is bounded by its own length: sparse entries
/// (whose holes a reader fills with zeros, up to any size the header
/// declares), devices and FIFOs are refused before any content is read, and
/// the sizes the headers declare may not add up to more than the archive.
/// The check is CPU work proportional to that length: async callers run it
/// on a blocking thread. Returns the Dockerfile's text.
pub fn check(archive: &[u8]) -> Result<Checked, ContextError> {
    let mut reader = tar::Archive::new(archive);
    let entries = reader
        .entries()
        .map_err(|e| ContextError::NotTar(e.to_string()))?;
    let mut found = None;
    let mut manifest = None;
    let mut any = false;
    let mut declared = 0u64;
    let mut links = std::collections::HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| ContextError::NotTar(e.to_string()))?;
        any = true;
        let path = entry
            .path()
            .map_err(|e| ContextError::NotTar(e.to_string()))?
            .into_owned();
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            return Err(ContextError::NotTar(format!(
                "{} is a {kind:?} entry; a build context holds only files, directories and links",
                path.display()
            )));
        }
        declared = declared.saturating_add(entry.size());
        if declared > archive.len() as u64 {
            return Err(ContextError::NotTar(format!(
                "its entries declare more bytes than the archive holds (at {})",
                path.display()
            )));
        }
        let clean: PathBuf = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        // The builder reads what the extracted tree holds at `Dockerfile`:
        // a link there, or a path through a link the archive made, could
        // put another file there than the one read here.
        if let Some(link) = clean.ancestors().skip(1).find(|a| links.contains(*a)) {
            return Err(ContextError::NotTar(format!(
                "{} passes through the link {}; a build context's paths may not",
                path.display(),
                link.display()
            )));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            links.insert(clean.clone());
        }
        if clean == Path::new("Dockerfile") && !kind.is_file() {
            return Err(ContextError::NotTar(
                "its Dockerfile is not a regular file".into(),
            ));
        }
        if clean == Path::new(MANIFEST_FILE) {
            if !kind.is_file() {
                return Err(ContextError::NotTar(format!(
                    "its {MANIFEST_FILE} is not a regular file"
                )));
            }
            if entry.size() > MAX_MANIFEST {
                return Err(ContextError::NotTar(format!(
                    "its {MANIFEST_FILE} is larger than {MAX_MANIFEST} bytes"
                )));
            }
            let mut text = String::new();
            entry
                .by_ref()
                .read_to_string(&mut text)
                .map_err(|e| ContextError::NotTar(format!("{MANIFEST_FILE}: {e}")))?;
            manifest = Some(text);
        }
        if clean == Path::new("Dockerfile") {
            let mut text = String::new();
            entry
                .by_ref()
                .take(MAX_DOCKERFILE)
                .read_to_string(&mut text)
                .map_err(|e| ContextError::NotTar(format!("the Dockerfile: {e}")))?;
            found = Some(text);
        }
        // Reading every entry to its end checks the archive's framing.
        std::io::copy(&mut entry.by_ref(), &mut std::io::sink())
            .map_err(|e| ContextError::NotTar(e.to_string()))?;
    }
    if !any {
        return Err(ContextError::NotTar("it holds no entries".into()));
    }
    let dockerfile = found.ok_or_else(|| ContextError::NoDockerfile(PathBuf::from("(upload)")))?;
    Ok(Checked {
        dockerfile,
        manifest,
    })
}

/// What [`check`] read from a sound build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The text of its `Dockerfile`.
    pub dockerfile: String,
    /// The text of its app manifest, when it has one.
    pub manifest: Option<String>,
}

/// The app manifest's name in a build context.
pub use rampart_core::manifest::MANIFEST_FILE;

/// The most of a Dockerfile that is read.
const MAX_DOCKERFILE: u64 = 1 << 20;
/// The largest app manifest accepted.
const MAX_MANIFEST: u64 = 64 * 1024;

/// The images a Dockerfile builds from: every `FROM` that names no earlier
/// stage (and is not `scratch`), and every `--from=` of `COPY`, `ADD` or a
/// `RUN --mount` that names no stage, `ONBUILD` triggers included. A
/// reference built from a variable cannot be known before the build and is
/// refused.
pub fn dockerfile_images(text: &str) -> Result<Vec<String>, String> {
    let escape = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find_map(|l| {
            let directive = l.trim_start_matches('#').trim();
            let (key, value) = directive.split_once('=')?;
            (key.trim().eq_ignore_ascii_case("escape")).then(|| value.trim().chars().next())?
        })
        .unwrap_or('\\');
    // Continuation lines join their instruction. As the builder does,
    // comment lines vanish wherever they stand, inside a continued
    // instruction too, and so do empty lines within one: a reader that kept
    // them would see another instruction than the builder runs.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && !current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix(escape) {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions.push(current);

    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    let mut image = |reference: &str, stages: &[String], what: &str| -> Result<(), String> {
        if reference.contains('$') {
            return Err(format!(
                "{what} {reference:?} names its image through a variable; name it literally"
            ));
        }
        let lower = reference.to_ascii_lowercase();
        let is_stage = stages.contains(&lower) || reference.parse::<usize>().is_ok();
        if !is_stage && lower != "scratch" {
            images.push(reference.to_owned());
        }
        Ok(())
    };
    for instruction in &instructions {
        let mut words: Vec<&str> = instruction.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("ONBUILD"))
        {
            words.remove(0);
        }
        let Some(keyword) = words.first().map(|w| w.to_ascii_uppercase()) else {
            continue;
        };
        let flags = words[1..].iter().take_while(|w| w.starts_with("--"));
        match keyword.as_str() {
            "FROM" => {
                let rest: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .skip_while(|w| w.starts_with("--"))
                    .collect();
                let Some(reference) = rest.first() else {
                    return Err("a FROM names no image".into());
                };
                image(reference, &stages, "FROM")?;
                if rest.len() >= 3 && rest[1].eq_ignore_ascii_case("AS") {
                    stages.push(rest[2].to_ascii_lowercase());
                }
            }
            "COPY" | "ADD" => {
                for flag in flags {
                    if let Some(from) = flag.strip_prefix("--from=") {
                        image(from, &stages, "COPY --from")?;
                    }
                }
            }
            "RUN" => {
                for flag in flags {
                    if let Some(mount) = flag.strip_prefix("--mount=") {
                        for option in mount.split(',') {
                            if let Some(from) = option.strip_prefix("from=") {
                                image(from, &stages, "RUN --mount from")?;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(images)
}

/// [`check`] on a blocking thread, so a large archive never holds up an
/// async worker.
pub async fn check_off_thread(archive: bytes::Bytes) -> Result<Checked, ContextError> {
    tokio::task::spawn_blocking(move || check(&archive))
        .await
        .map_err(|e| ContextError::NotTar(format!("the check stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_what_is_not_a_context() {
        assert!(matches!(check(b""), Err(ContextError::NotTar(_))));
        assert!(check(&[0xFFu8; 2048]).is_err());
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_cksum();
        builder
            .append_data(&mut header, "README", &b"x"[..])
            .unwrap();
        let archive = builder.into_inner().unwrap();
        assert!(matches!(
            check(&archive),
            Err(ContextError::NoDockerfile(_))
        ));
        assert!(check(&archive[..700]).is_err(), "a cut archive is refused");
    }

    #[test]
    fn every_image_a_dockerfile_builds_from_is_found() {
        let text = "# syntax=docker/dockerfile:1\n\
                    FROM --platform=linux/amd64 base/one:1 AS build\n\
                    RUN --mount=type=cache,from=cache/img:2,target=/c make\n\
                    FROM build AS again\n\
                    FROM scratch\n\
                    COPY --from=build /a /a\n\
                    COPY --from=0 /b /b\n\
                    COPY --chown=1:1 \\\n  --from=rampart/other:r3 /c /c\n\
                    onbuild copy --from=sneaky/img /d /d\n";
        assert_eq!(
            dockerfile_images(text).unwrap(),
            [
                "base/one:1",
                "cache/img:2",
                "rampart/other:r3",
                "sneaky/img"
            ]
        );
        assert!(dockerfile_images("ARG B=x\nFROM ${B}\n").is_err());
        assert!(dockerfile_images("FROM a\nCOPY --from=$X /a /a\n").is_err());
        assert_eq!(
            dockerfile_images("# escape=`\nFROM `\n  rampart/other:r1\n").unwrap(),
            ["rampart/other:r1"]
        );
        // A comment or an empty line inside a continued FROM is dropped by
        // the builder, so the image is the line after it.
        for hidden in [
            "FROM \\\n# a comment\nrampart/other:r1\n",
            "FROM \\\n   # indented\n\n  rampart/other:r1\n",
            "FROM scratch\nCOPY \\\n# x\n--from=rampart/other:r1 /a /a\n",
        ] {
            assert_eq!(
                dockerfile_images(hidden).unwrap(),
                ["rampart/other:r1"],
                "{hidden:?}"
            );
        }
    }

    /// The Dockerfile comes from a developer: whatever its bytes, the parser
    /// answers and never panics.
    #[test]
    fn hostile_dockerfiles_never_panic() {
        const PIECES: &[&str] = &[
            "FROM",
            "from",
            " ",
            "\t",
            "\n",
            "\\\n",
            "`",
            "# escape=`\n",
            "#",
            "AS",
            "as",
            "--from=",
            "--mount=",
            "from=",
            ",",
            "COPY",
            "RUN",
            "ONBUILD",
            "scratch",
            "$",
            "${",
            "}",
            "a",
            "rampart/x:r1",
            "0",
            "\u{0}",
            "\u{feff}",
            "é",
            "=",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let _ = dockerfile_images(&text);
        }
    }

    /// What the builder would read as the Dockerfile must be what the
    /// check read: no link at `Dockerfile`, no path through a link.
    #[test]
    fn check_refuses_a_dockerfile_behind_a_link() {
        let file = |builder: &mut tar::Builder<Vec<u8>>, name: &str, text: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, text).unwrap();
        };
        let link = |builder: &mut tar::Builder<Vec<u8>>, name: &str, target: &str| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, target).unwrap();
        };
        let mut later_link = tar::Builder::new(Vec::new());
        file(&mut later_link, "Dockerfile", b"FROM scratch\n");
        file(&mut later_link, "other", b"FROM rampart/other:r1\n");
        link(&mut later_link, "Dockerfile", "other");
        let err = check(&later_link.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let mut through = tar::Builder::new(Vec::new());
        file(&mut through, "Dockerfile", b"FROM scratch\n");
        link(&mut through, "sub", ".");
        file(&mut through, "sub/Dockerfile", b"FROM rampart/other:r1\n");
        let err = check(&through.into_inner().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("passes through the link sub"),
            "{err}"
        );
    }

    #[test]
    fn check_refuses_sparse_entries_devices_and_inflated_sizes() {
        let bomb = rampart_testkit::sparse_tar_bomb();
        assert!(bomb.len() < 4096);
        let err = check(&bomb).unwrap_err().to_string();
        assert!(err.contains("zeros") && err.contains("GNUSparse"), "{err}");

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_cksum();
        builder
            .append_data(&mut header, "Dockerfile", &b"FROM"[..])
            .unwrap();
        let mut fifo = tar::Header::new_gnu();
        fifo.set_entry_type(tar::EntryType::Fifo);
        fifo.set_size(0);
        fifo.set_cksum();
        builder.append_data(&mut fifo, "pipe", &b""[..]).unwrap();
        let err = check(&builder.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains("pipe"), "{err}");
    }
}
