//! Second factors: TOTP enrolment and confirmation, and the check of a
//! TOTP or recovery code at login.

use super::*;

pub(super) fn totp(seed: &[u8]) -> Result<totp_rs::TOTP, Error> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, TOTP_STEP, seed.to_vec())
        .map_err(|e| Error::Sealed(format!("the TOTP seed is unusable: {e}")))
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time step whose code is `code`, within the skew window.
pub(super) fn matching_step(totp: &totp_rs::TOTP, code: &str, now: u64) -> Option<u64> {
    let current = now / TOTP_STEP;
    let mut found = None;
    // Every candidate is compared, in constant time, whatever matches.
    for step in current.saturating_sub(TOTP_SKEW)..=current + TOTP_SKEW {
        let expected = totp.generate(step * TOTP_STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

pub(super) fn recovery_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut part = || -> String {
        (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}-{}", part(), part())
}

pub(super) fn totp_aad(user: &UserId) -> Vec<u8> {
    format!("rampart/totp/v1\0{user}").into_bytes()
}

impl Identity<'_> {
    /// The user's TOTP generator, from the seed sealed under the master key.
    fn user_totp(&self, creds: &Credentials, sealed: &[u8]) -> Result<totp_rs::TOTP, Error> {
        let seed = self
            .p
            .key
            .open(&totp_aad(&creds.user.id), sealed)
            .map_err(|_| {
                Error::Sealed("the TOTP seed does not open with this master key".into())
            })?;
        totp(&seed)
    }

    /// Starts a TOTP enrollment for the caller: a new seed, sealed, awaiting
    /// its first code.
    pub async fn enroll_mfa(&self, acting: Acting<'_>) -> Result<wire::MfaEnrollment, Error> {
        let user = self
            .p
            .store
            .user(&acting.caller.user_id)
            .await?
            .ok_or_else(|| Error::NotFound("the caller's account is gone".into()))?;
        if user.mfa_enabled {
            return Err(Error::Conflict("MFA is already enrolled".into()));
        }
        let mut seed = [0u8; 20];
        rand::fill(&mut seed);
        let sealed = self.p.key.seal(&totp_aad(&user.id), &seed);
        let record = self.p.record(
            acting,
            Action::MfaEnroll,
            format!("users/{}/mfa/start", user.id),
        );
        self.p
            .committed(self.p.store.set_mfa_seed(&user.id, &sealed, record).await)
            .await?;
        let secret = totp_rs::Secret::Raw(seed.to_vec()).to_encoded().to_string();
        let account = user.email.unwrap_or_else(|| user.id.to_string());
        let label: String = format!("Rampart:{account}")
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Ok(wire::MfaEnrollment {
            otpauth_uri: format!(
                "otpauth://totp/{label}?secret={secret}&issuer=Rampart&algorithm=SHA1&digits=6&period=30"
            ),
            secret,
        })
    }

    /// Confirms an enrollment with a first code; returns the recovery codes.
    pub async fn confirm_mfa(
        &self,
        acting: Acting<'_>,
        code: &str,
    ) -> Result<wire::RecoveryCodes, Error> {
        let creds = self
            .p
            .store
            .credentials(&acting.caller.user_id)
            .await?
            .ok_or_else(|| Error::NotFound("the caller's account is gone".into()))?;
        if creds.user.mfa_enabled {
            return Err(Error::Conflict("MFA is already enrolled".into()));
        }
        let Some(sealed) = &creds.mfa_seed else {
            return Err(Error::Conflict("start with `rampart mfa enroll`".into()));
        };
        let Some(step) = matching_step(&self.user_totp(&creds, sealed)?, code.trim(), now_secs())
        else {
            let record = Platform::record_by(
                creds.user.id.as_str(),
                Action::MfaEnroll,
                format!("users/{}/mfa/confirm", creds.user.id),
                Outcome::Failed,
                acting.request_id,
            );
            self.p.append(record).await;
            return Err(Error::Invalid("the code is wrong or stale".into()));
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(c)).collect();
        let record = self.p.record(
            acting,
            Action::MfaEnroll,
            format!("users/{}/mfa/confirm", creds.user.id),
        );
        self.p
            .committed(
                self.p
                    .store
                    .enable_mfa(&creds.user.id, step, &hashes, record)
                    .await,
            )
            .await?;
        Ok(wire::RecoveryCodes { codes })
    }

    /// Checks a second factor: a TOTP code (each step once) or an unused
    /// recovery code.
    pub(super) async fn second_factor(
        &self,
        creds: &Credentials,
        code: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(false);
        };
        let Some(sealed) = &creds.mfa_seed else {
            return Ok(false);
        };
        if code.contains('-') {
            let at = Timestamp::now().to_rfc3339();
            return Ok(self
                .p
                .store
                .use_recovery_code(&creds.user.id, &sha256_hex(&code.to_ascii_lowercase()), &at)
                .await?);
        }
        match matching_step(&self.user_totp(creds, sealed)?, code, now_secs()) {
            // Atomic: a step no newer than the last one used is a replay.
            Some(step) => Ok(self.p.store.use_totp_step(&creds.user.id, step).await?),
            None => Ok(false),
        }
    }
}
