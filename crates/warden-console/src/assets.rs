//! The console's style sheet and script, built into the binary.

/// The style sheet, served at `/console/assets/console.css`.
pub const CSS: &str = include_str!("../assets/console.css");

/// The script, served at `/console/assets/console.js`: it opens the page's event stream
/// (if the page names one) and applies what arrives; every page works without it.
pub const JS: &str = include_str!("../assets/console.js");

/// The icon, served at `/console/assets/icon.svg`.
pub const ICON: &str = include_str!("../assets/icon.svg");

/// The asset at `name` under `/console/assets/`, with its content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "console.css" => Some((CSS, "text/css; charset=utf-8")),
        "console.js" => Some((JS, "text/javascript; charset=utf-8")),
        "icon.svg" => Some((ICON, "image/svg+xml")),
        _ => None,
    }
}
