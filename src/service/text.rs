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
