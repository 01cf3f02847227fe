//! The one function that decides whether a caller may perform an action.
//!
//! Roles: owners and admins may do everything the API offers (only owners
//! manage owners, which the operations check against their target);
//! developers deploy, configure, run one-off commands, set variables, read
//! logs and take backups of the apps granted to them; viewers only read. Database passwords,
//! restores and schedules are for owners and admins. Three more rules apply on top:
//!
//! - an owner or admin without MFA, while `auth.require_mfa` holds, may
//!   only enroll (and sign out);
//! - a token limited to one app acts on that app only;
//! - a token never acts above its role (the store already caps it).

use rampart_core::{Action, AppName, Role};
use rampart_platform::Caller;

/// Whether `role` may perform `action` at all.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Owner | Role::Admin => {
            !matches!(action, Bootstrap | AlertRaise | ReportSubmit | IngressSync)
        }
        Role::Developer => matches!(
            action,
            AppRead
                | EnvSet
                | EnvUnset
                | Deploy
                | AppConfigure
                | AppRun
                | CronSet
                | RuntimeRead
                | LogsRead
                | DatabaseRead
                | BackupRun
                | BackupRead
                | MfaEnroll
                | SessionEnd
        ),
        Role::Viewer => matches!(
            action,
            AppRead | RuntimeRead | DatabaseRead | BackupRead | MfaEnroll | SessionEnd
        ),
    }
}

/// Decides one request: `app` is the app named in its path, if any.
/// The error says why, for the 403 body.
pub fn decide(caller: &Caller, action: Action, app: Option<&str>) -> Result<(), String> {
    let own_account = matches!(action, Action::MfaEnroll | Action::SessionEnd);
    if caller.needs_mfa && !own_account {
        // Only owners and admins need MFA, and both take "an".
        return Err(format!(
            "an {} must enroll MFA before anything else: run `rampart mfa enroll`",
            caller.role
        ));
    }
    if !allows(caller.role, action) {
        return Err(format!("role {} may not perform {action}", caller.role));
    }
    if let Some(scope) = &caller.scope
        && !own_account
        && app != Some(scope.as_str())
    {
        return Err(format!("this token may only act on app {scope}"));
    }
    // A token limited to one app carries that app as its grant.
    if caller.role == Role::Developer
        && let Some(app) = app
        && !caller.grants.iter().any(|g| g.as_str() == app)
        && caller.scope.as_ref().map(AppName::as_str) != Some(app)
    {
        return Err(format!("app {app} is not granted to this developer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::{TokenId, UserId};

    fn caller(role: Role) -> Caller {
        Caller {
            expires_at: None,
            user_id: UserId::generate(),
            role,
            token_id: TokenId::generate(),
            session: false,
            scope: None,
            grants: Vec::new(),
            mfa_enrolled: true,
            needs_mfa: false,
        }
    }

    #[test]
    fn only_owners_and_admins_reveal_secrets() {
        for role in Role::ALL {
            let expected = matches!(role, Role::Owner | Role::Admin);
            assert_eq!(allows(role, Action::EnvReveal), expected, "{role}");
        }
    }

    #[test]
    fn viewers_never_mutate() {
        for action in Action::ALL {
            if action.is_audited() && !matches!(action, Action::MfaEnroll | Action::SessionEnd) {
                assert!(!allows(Role::Viewer, action), "{action}");
            }
        }
    }

    #[test]
    fn nobody_bootstraps_through_the_api() {
        for role in Role::ALL {
            assert!(!allows(role, Action::Bootstrap));
        }
    }

    #[test]
    fn owners_without_mfa_may_only_enroll() {
        let mut owner = caller(Role::Owner);
        owner.needs_mfa = true;
        assert!(decide(&owner, Action::AppCreate, None).is_err());
        assert!(decide(&owner, Action::MfaEnroll, None).is_ok());
        owner.needs_mfa = false;
        assert!(decide(&owner, Action::AppCreate, None).is_ok());
    }

    #[test]
    fn developers_act_on_granted_apps_and_scoped_tokens_on_their_app() {
        let mut dev = caller(Role::Developer);
        dev.grants = vec![AppName::parse("shop").unwrap()];
        assert!(decide(&dev, Action::Deploy, Some("shop")).is_ok());
        assert!(decide(&dev, Action::Deploy, Some("blog")).is_err());
        assert!(decide(&dev, Action::AppCreate, None).is_err());
        let mut scoped = caller(Role::Admin);
        scoped.scope = Some(AppName::parse("blog").unwrap());
        assert!(decide(&scoped, Action::Deploy, Some("blog")).is_ok());
        assert!(decide(&scoped, Action::Deploy, Some("shop")).is_err());
        assert!(decide(&scoped, Action::UserInvite, None).is_err());
        assert!(decide(&scoped, Action::SessionEnd, None).is_ok());
    }
}
