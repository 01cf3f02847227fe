//! The one function that decides whether a role may perform an action.
//!
//! Owners and admins may do everything the API offers today. Reading
//! secret values in clear text is for owners and admins only. Developers
//! change variables but cannot create or delete apps; viewers only read.
//! Tokens are managed by owners and admins until per-user token scoping
//! arrives with user management.

use rampart_core::{Action, Role};

/// Whether `role` may perform `action`.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Owner | Role::Admin => action != Bootstrap,
        Role::Developer => matches!(
            action,
            AppRead | EnvSet | EnvUnset | Deploy | AppConfigure | RuntimeRead | LogsRead
        ),
        Role::Viewer => matches!(action, AppRead | RuntimeRead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            if action.is_audited() {
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
}
