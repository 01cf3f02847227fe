//! Which images an app may run and build from.

use super::*;

/// Refuses what cannot be an image reference or id.
pub fn check_image_reference(reference: &str) -> Result<(), Error> {
    let ok = !reference.is_empty()
        && reference.len() <= 512
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{reference:?} is not an image reference such as name:tag or sha256:…"
        )))
    }
}

impl Deploys<'_> {
    /// Refuses an image `app` may not run or build from: an app uses its
    /// own images (`rampart/APP:…`) and those the operator allows
    /// (`apps.images`), never another app's, whatever name or id it is
    /// given by.
    pub(super) async fn check_image_use(
        &self,
        engine: &Engine,
        app: &AppRow,
        reference: &str,
    ) -> Result<(), Error> {
        // By id (whole or a prefix) any image on the engine can be named,
        // the layers another app's build left behind among them, which
        // have no name to check: an id is accepted only for an image of
        // one of the app's own releases (a restart deploys the live one).
        let bare = reference.strip_prefix("sha256:").unwrap_or(reference);
        let by_id = reference.starts_with("sha256:")
            || (!bare.is_empty()
                && bare.len() <= 64
                && bare.bytes().all(|b| b.is_ascii_hexdigit()));
        if by_id {
            let own_release = match engine.runtime.image(reference).await {
                Ok(image) => self
                    .p
                    .store
                    .releases(&app.id)
                    .await?
                    .iter()
                    .any(|r| r.image_id == image.id),
                Err(_) => false,
            };
            if own_release {
                return Ok(());
            }
            return Err(Error::Forbidden(format!(
                "app {:?} may not use image {reference:?}: name an image (name:tag); an id is accepted only for the app's own releases",
                app.name.as_str()
            )));
        }
        let own = format!("rampart/{}", app.name);
        let named_own = reference
            .strip_prefix(&own)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'));
        if !named_own
            && (reference.starts_with("rampart/") || !self.p.app_limits.allows_image(reference))
        {
            return Err(Error::Forbidden(format!(
                "app {:?} may not use image {reference:?}: an app runs and builds from its own images and those apps.images allows",
                app.name.as_str()
            )));
        }
        // Another name for another app's image is still that app's. (Its
        // own tag may share an id with another app's image when both were
        // built from the same context; that leaks nothing.)
        if !named_own && let Ok(image) = engine.runtime.image(reference).await {
            for other in self.p.store.apps().await? {
                if other.id == app.id {
                    continue;
                }
                let theirs = self.p.store.releases(&other.id).await?;
                if theirs.iter().any(|r| r.image_id == image.id) {
                    return Err(Error::Forbidden(format!(
                        "app {:?} may not use image {reference:?}: it is an image of another app",
                        app.name.as_str()
                    )));
                }
            }
        }
        Ok(())
    }
}
