//! Rules for short human-readable text (display names, room names).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{AppError, AppResult};

/// Refuses control (Cc) and format (Cf) characters, except U+200D (the zero
/// width joiner that emoji sequences such as "👩‍💻" need). Names are shown
/// to other users: a right-to-left override (U+202E) reverses what follows
/// it, and zero-width characters (U+200B, U+FEFF) make two names that look
/// the same compare different, both ways to impersonate someone.
pub fn reject_invisible(field: &str, value: &str) -> AppResult<()> {
    let invisible = |c: char| {
        c != '\u{200D}' && (c.is_control() || c.general_category() == GeneralCategory::Format)
    };
    if value.chars().any(invisible) {
        return Err(AppError::bad_input(format!(
            "{field} must not contain control or invisible formatting characters"
        )));
    }
    Ok(())
}

/// A reaction's emoji (SEMANTICS): 1–32 bytes of UTF-8, no Unicode
/// whitespace, no control characters (Cc); U+200D joins emoji sequences.
pub fn validate_emoji(emoji: &str) -> AppResult<()> {
    if emoji.is_empty() || emoji.len() > 32 {
        return Err(AppError::bad_input("emoji must be 1–32 bytes of UTF-8"));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AppError::bad_input(
            "emoji must not contain whitespace or control characters",
        ));
    }
    Ok(())
}
