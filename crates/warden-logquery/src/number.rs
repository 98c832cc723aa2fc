//! Numbers as both languages read them from text and print them.

/// Parses `text` as a decimal number: an optional sign, digits with an optional fraction
/// (or a fraction alone), and an optional exponent. Unlike `str::parse::<f64>`, refuses
/// `inf`, `NaN` and the like, which no log line means as a number.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Prints a number as Logs Insights shows it: integers without a fraction, others in the
/// shortest form that reads back to the same value.
pub(crate) fn format_number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        // Integral and |n| < 1e15 < 2^53: the conversion is exact.
        let i = n as i64;
        format!("{i}")
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_strictly() {
        for (text, want) in [
            ("0", Some(0.0)),
            ("+1000", Some(1000.0)),
            ("-2.5", Some(-2.5)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("10e3", Some(10e3)),
            ("10e-3", Some(10e-3)),
            ("1E+2", Some(100.0)),
        ] {
            assert_eq!(parse_number(text), want, "{text}");
        }
        for text in [
            "", "+", ".", "e3", "1e", "1e+", "inf", "NaN", "1x", "1.2.3", " 1", "1 ", "0x10",
        ] {
            assert_eq!(parse_number(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_print_like_insights() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(1e20), "100000000000000000000");
        assert_eq!(format_number(0.1 + 0.2), "0.30000000000000004");
    }
}
