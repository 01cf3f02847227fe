//! The user a replica runs as: resolved to numbers from the image's own
//! `passwd` and `group`, never root unless the app may run as root.

use super::*;

/// The numeric `uid:gid` a replica of an image whose configured user is
/// `user` runs as, when the app may not run as root.
///
/// The engine would resolve names in the image's own `/etc/passwd`, where
/// any name may stand for uid 0, and treats `00` as 0; a numeric user with
/// no group runs in group 0. So the user is always resolved here, from the
/// image's `passwd` and `group` files, into numbers: root (uid 0) becomes
/// nobody, group 0 becomes nogroup, and anything that cannot be resolved
/// runs as nobody.
pub(super) fn unprivileged_user(user: &str, passwd: &str, group: &str) -> String {
    let (name, group_name) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = |file: &str, field: usize, key: &str| -> Option<(u32, Option<u32>)> {
        file.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&key) {
                return None;
            }
            let id = fields.get(field)?.trim().parse().ok()?;
            let gid = fields.get(field + 1).and_then(|g| g.trim().parse().ok());
            Some((id, gid))
        })
    };
    let numeric = |s: &str| s.parse::<u32>().ok();
    let (uid, primary) = match numeric(name) {
        Some(uid) => {
            let primary = passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2).and_then(|u| numeric(u)) == Some(uid))
                    .then(|| fields.get(3).and_then(|g| numeric(g)))
                    .flatten()
            });
            (Some(uid), primary)
        }
        None if name.is_empty() => (None, None),
        None => match entry(passwd, 2, name) {
            Some((uid, gid)) => (Some(uid), gid),
            None => (None, None),
        },
    };
    let gid = match group_name {
        Some(g) => numeric(g).or_else(|| entry(group, 2, g).map(|(gid, _)| gid)),
        None => primary,
    };
    match (uid, gid) {
        (Some(uid), Some(gid)) if uid != 0 && gid != 0 => format!("{uid}:{gid}"),
        (Some(uid), _) if uid != 0 => format!("{uid}:65534"),
        _ => NOBODY.to_owned(),
    }
}

impl Docker {
    /// The numeric user a replica of `image` runs as when it may not run as
    /// root (see [`unprivileged_user`]).
    pub(crate) async fn unprivileged_user(&self, image: &Image) -> Result<String, RuntimeError> {
        let numeric_pair = image
            .user
            .split_once(':')
            .is_some_and(|(u, g)| u.parse::<u32>().is_ok() && g.parse::<u32>().is_ok());
        if image.user.is_empty() || numeric_pair {
            return Ok(unprivileged_user(&image.user, "", ""));
        }
        let passwd = self.image_file(&image.id, "/etc/passwd").await?;
        let group = self.image_file(&image.id, "/etc/group").await?;
        Ok(unprivileged_user(&image.user, &passwd, &group))
    }

    /// The text of a small file in an image (empty when it has none), read
    /// from a container that is created for it and never started.
    pub(super) async fn image_file(&self, image: &str, path: &str) -> Result<String, RuntimeError> {
        const MAX: u64 = 1 << 20;
        let client = self.client().await?;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec!["/nonexistent".into()]),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = client
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(engine_error)?;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut archive = Vec::new();
        let mut stream = client.download_from_container(&created.id, Some(options));
        let mut read = Ok(());
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) if (archive.len() + bytes.len()) as u64 <= MAX + 4096 => {
                    archive.extend_from_slice(&bytes)
                }
                Ok(_) => {
                    read = Err(RuntimeError::Engine(format!(
                        "{path} in the image is too large"
                    )));
                    break;
                }
                Err(e) if is_not_found(&e) => break,
                Err(e) => {
                    read = Err(engine_error(e));
                    break;
                }
            }
        }
        drop(stream);
        let _ = self.remove(&created.id, Duration::ZERO).await;
        read?;
        let mut text = String::new();
        let mut tar = tar::Archive::new(archive.as_slice());
        if let Ok(mut entries) = tar.entries()
            && let Some(Ok(entry)) = entries.next()
            && entry.header().entry_type().is_file()
        {
            use std::io::Read;
            let _ = entry.take(MAX).read_to_string(&mut text);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_to_numbers_and_root_never_passes() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                      toor:x:0:0::/:/bin/sh\n\
                      app:x:1000:1000::/app:/bin/sh\n\
                      rootgroup:x:1001:0::/:/bin/sh\n";
        let group = "root:x:0:\nwheel:x:10:\napp:x:1000:\n";
        for user in [
            "",
            "0",
            "00",
            "root",
            "0:0",
            "root:root",
            "toor",
            "0:1000",
            "missing",
        ] {
            assert_eq!(unprivileged_user(user, passwd, group), NOBODY, "{user:?}");
        }
        assert_eq!(unprivileged_user("app", passwd, group), "1000:1000");
        assert_eq!(unprivileged_user("1000", passwd, group), "1000:1000");
        assert_eq!(unprivileged_user("1000:wheel", passwd, group), "1000:10");
        assert_eq!(unprivileged_user("app:root", passwd, group), "1000:65534");
        assert_eq!(unprivileged_user("rootgroup", passwd, group), "1001:65534");
        assert_eq!(
            unprivileged_user("4242", "", ""),
            "4242:65534",
            "no group 0"
        );
        assert_eq!(unprivileged_user("65534:65534", "", ""), NOBODY);
    }
}
