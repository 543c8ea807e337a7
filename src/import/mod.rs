//! Converters from vendor exports into Vigil events.

pub mod whoop;

/// The most characters the event schema allows in a user id.
pub const MAX_USER_ID_CHARS: usize = 256;

/// Why a user id given by hand (`import … --user`, `silence add --user`) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("the user id is empty")]
    Empty,
    #[error("the user id {0:?} is only whitespace")]
    Blank(String),
    #[error("the user id {0:?} begins or ends with whitespace")]
    Padded(String),
    #[error("the user id {0:?} contains a control character")]
    Control(String),
    #[error("the user id is {chars} characters long; at most {max} are accepted")]
    TooLong { chars: usize, max: usize },
}

/// Checks a user id typed by a person before it goes into events or silences: the schema
/// alone accepts `" "`, a stray tab or a pasted newline, which would make a user no one can
/// find again (or events `vigil run` dead-letters), so these are refused here, where the
/// person who typed them reads the reason. `max_chars` is [`MAX_USER_ID_CHARS`], or less
/// where the id is also part of a longer field.
pub fn check_user_id(user: &str, max_chars: usize) -> Result<(), UserIdError> {
    if user.is_empty() {
        return Err(UserIdError::Empty);
    }
    if user.trim().is_empty() {
        return Err(UserIdError::Blank(user.to_string()));
    }
    if user.chars().any(char::is_control) {
        return Err(UserIdError::Control(user.to_string()));
    }
    if user.trim() != user {
        return Err(UserIdError::Padded(user.to_string()));
    }
    let chars = user.chars().count();
    if chars > max_chars {
        return Err(UserIdError::TooLong {
            chars,
            max: max_chars,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_people_could_not_mean_are_refused() {
        assert_eq!(check_user_id("alice", 256), Ok(()));
        assert_eq!(check_user_id("u-42 (test)", 256), Ok(()));
        assert_eq!(check_user_id("", 256), Err(UserIdError::Empty));
        assert_eq!(
            check_user_id(" \t", 256),
            Err(UserIdError::Blank(" \t".into()))
        );
        assert_eq!(
            check_user_id("al\nice", 256),
            Err(UserIdError::Control("al\nice".into()))
        );
        assert_eq!(
            check_user_id("bob\u{7f}", 256),
            Err(UserIdError::Control("bob\u{7f}".into()))
        );
        assert_eq!(
            check_user_id(" alice", 256),
            Err(UserIdError::Padded(" alice".into()))
        );
        assert_eq!(
            check_user_id("ééé", 2),
            Err(UserIdError::TooLong { chars: 3, max: 2 })
        );
        let e = check_user_id("", 256).expect_err("empty").to_string();
        assert_eq!(e, "the user id is empty");
    }
}
