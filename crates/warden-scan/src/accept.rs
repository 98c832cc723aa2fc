//! Accepted advisories: an operator's decision that a known vulnerability is acceptable
//! for now, for every function or for one, until a date, with the reason written down.
//!
//! An acceptance is in force up to and including its `until` day (UTC) and counts for
//! nothing after it, so a forgotten acceptance expires on its own. It can never be made
//! for longer than [`MAX_DAYS_AHEAD`] days, nor for a day already past. Every field is
//! checked when an acceptance is made ([`Acceptance::new`]), so a stored one is always
//! well formed.

use time::Date;

/// The most acceptances kept at once.
pub const MAX_ACCEPTANCES: usize = 10_000;
/// The furthest an acceptance can reach, in days after today.
pub const MAX_DAYS_AHEAD: i64 = 366;
/// The longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// The longest advisory id, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// Why an acceptance was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AcceptError {
    /// The input field at fault (`AdvisoryId`, `Until`, `Reason`, `FunctionName`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn refused(field: &'static str, message: impl Into<String>) -> AcceptError {
    AcceptError {
        field,
        message: message.into(),
    }
}

/// One accepted advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The advisory's id (OSV, as the findings name it).
    pub advisory_id: String,
    /// The one function it applies to; `None` for every function.
    pub function: Option<String>,
    /// The last day (UTC) it is in force.
    pub until: Date,
    /// Why the risk was accepted.
    pub reason: String,
}

/// Checks an advisory id: 1 to [`MAX_ID_CHARS`] ASCII letters, digits and `-_.:`,
/// starting with a letter or digit (OSV ids are like `PYSEC-2024-60`, `GHSA-xxxx-...`).
pub fn check_advisory_id(id: &str) -> Result<(), AcceptError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(refused(
            "AdvisoryId",
            format!("an advisory id is 1-{MAX_ID_CHARS} ASCII letters, digits and `-_.:`, starting with a letter or digit"),
        ))
    }
}

/// Parses a day written `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<Date, AcceptError> {
    let bad = || refused("Until", "a day is written YYYY-MM-DD");
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let number = |s: &str| -> Result<u16, AcceptError> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let year = i32::from(number(y)?);
    let month = u8::try_from(number(m)?)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let day = u8::try_from(number(d)?).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, day)
        .map_err(|_| refused("Until", format!("`{text}` is not a day of the calendar")))
}

/// A day written `YYYY-MM-DD`.
pub fn format_day(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

impl Acceptance {
    /// Checks an acceptance made on `today` (UTC): the id's form, `until` from today to
    /// [`MAX_DAYS_AHEAD`] days ahead, a reason of 1 to [`MAX_REASON_CHARS`] characters
    /// without control characters (surrounding space is trimmed). The function's name is
    /// the caller's to check.
    pub fn new(
        advisory_id: &str,
        function: Option<String>,
        until: &str,
        reason: &str,
        today: Date,
    ) -> Result<Acceptance, AcceptError> {
        check_advisory_id(advisory_id)?;
        let until = parse_day(until)?;
        if until < today {
            return Err(refused(
                "Until",
                format!(
                    "{} is in the past (today is {})",
                    format_day(until),
                    format_day(today)
                ),
            ));
        }
        if (until - today).whole_days() > MAX_DAYS_AHEAD {
            return Err(refused(
                "Until",
                format!("an advisory can be accepted for at most {MAX_DAYS_AHEAD} days ahead"),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(refused("Reason", "a reason is required"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(refused(
                "Reason",
                format!("a reason is at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if reason.chars().any(char::is_control) {
            return Err(refused("Reason", "a reason has no control characters"));
        }
        Ok(Acceptance {
            advisory_id: advisory_id.to_owned(),
            function,
            until,
            reason: reason.to_owned(),
        })
    }

    /// Whether it is in force on `today` (its last day included).
    pub fn in_force(&self, today: Date) -> bool {
        today <= self.until
    }

    /// Whether it covers `advisory_id` in `function`.
    pub fn covers(&self, advisory_id: &str, function: &str) -> bool {
        self.advisory_id == advisory_id && self.function.as_deref().is_none_or(|f| f == function)
    }
}

/// The acceptance in force on `today` that covers `advisory_id` in `function`, if any:
/// one made for the function itself first, else one for every function.
pub fn accepted<'a>(
    acceptances: &'a [Acceptance],
    advisory_id: &str,
    function: &str,
    today: Date,
) -> Option<&'a Acceptance> {
    let mut covering = acceptances
        .iter()
        .filter(|a| a.in_force(today) && a.covers(advisory_id, function));
    let first = covering.next()?;
    if first.function.is_some() {
        return Some(first);
    }
    Some(covering.find(|a| a.function.is_some()).unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 04);

    #[test]
    fn an_acceptance_counts_up_to_its_last_day_and_not_after() {
        let a = Acceptance::new("PYSEC-2024-60", None, "2026-12-05", "no fix yet", TODAY)
            .expect("valid");
        assert!(a.in_force(TODAY));
        assert!(a.in_force(date!(2026 - 12 - 05)));
        assert!(!a.in_force(date!(2026 - 12 - 06)));
        let list = [a];
        assert!(accepted(&list, "PYSEC-2024-60", "f", date!(2026 - 12 - 05)).is_some());
        assert!(accepted(&list, "PYSEC-2024-60", "f", date!(2026 - 12 - 06)).is_none());
        assert!(accepted(&list, "PYSEC-2018-28", "f", TODAY).is_none());
    }

    #[test]
    fn one_function_s_acceptance_covers_only_it_and_is_preferred() {
        let all = Acceptance::new("A-1", None, "2027-01-01", "everyone", TODAY).expect("valid");
        let one =
            Acceptance::new("A-1", Some("f".into()), "2026-12-10", "just f", TODAY).expect("valid");
        let list = [all, one];
        assert_eq!(
            accepted(&list, "A-1", "f", TODAY).map(|a| a.reason.as_str()),
            Some("just f")
        );
        assert_eq!(
            accepted(&list, "A-1", "g", TODAY).map(|a| a.reason.as_str()),
            Some("everyone")
        );
        // Once f's own has expired, the one for every function still covers it.
        assert_eq!(
            accepted(&list, "A-1", "f", date!(2026 - 12 - 11)).map(|a| a.reason.as_str()),
            Some("everyone")
        );
        let only =
            [Acceptance::new("A-1", Some("f".into()), "2026-12-10", "f", TODAY).expect("valid")];
        assert!(accepted(&only, "A-1", "g", TODAY).is_none());
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let field = |id: &str, until: &str, reason: &str| {
            Acceptance::new(id, None, until, reason, TODAY)
                .expect_err("refused")
                .field
        };
        assert_eq!(field("", "2026-12-05", "r"), "AdvisoryId");
        assert_eq!(field("-A", "2026-12-05", "r"), "AdvisoryId");
        assert_eq!(field("A B", "2026-12-05", "r"), "AdvisoryId");
        assert_eq!(field(&"A".repeat(129), "2026-12-05", "r"), "AdvisoryId");
        assert_eq!(field("A-1", "2026-12-03", "r"), "Until");
        assert_eq!(field("A-1", "2027-12-06", "r"), "Until");
        assert_eq!(field("A-1", "2026-02-30", "r"), "Until");
        assert_eq!(field("A-1", "2026-12-5", "r"), "Until");
        assert_eq!(field("A-1", "+026-12-05", "r"), "Until");
        assert_eq!(field("A-1", "tomorrow", "r"), "Until");
        assert_eq!(field("A-1", "2026-12-05", "  "), "Reason");
        assert_eq!(field("A-1", "2026-12-05", "a\nb"), "Reason");
        assert_eq!(
            field("A-1", "2026-12-05", &"r".repeat(MAX_REASON_CHARS + 1)),
            "Reason"
        );
        // The edges are accepted: today, and the furthest day.
        assert!(Acceptance::new("A-1", None, "2026-12-04", "r", TODAY).is_ok());
        let furthest = format_day(TODAY + time::Duration::days(MAX_DAYS_AHEAD));
        assert!(Acceptance::new("A-1", None, &furthest, "r", TODAY).is_ok());
    }

    #[test]
    fn days_round_trip() {
        for d in ["2026-01-01", "2028-02-29", "9999-12-31"] {
            assert_eq!(format_day(parse_day(d).expect("day")), d);
        }
    }

    proptest::proptest! {
        /// Whatever the text, the checks answer without panicking, and a day that parses
        /// is written back the same.
        #[test]
        fn parsers_never_panic_and_days_round_trip(text in "\\PC{0,40}", day in 0i32..3_000_000) {
            let _ = check_advisory_id(&text);
            if let Ok(d) = parse_day(&text) {
                proptest::prop_assert_eq!(format_day(d), text.clone());
            }
            if let Ok(d) = Date::from_julian_day(day) {
                if (0..=9999).contains(&d.year()) {
                    proptest::prop_assert_eq!(parse_day(&format_day(d)).ok(), Some(d));
                }
            }
        }
    }
}
