//! Pagination as AWS list operations do it: the caller sends `Marker` (absent for the first
//! page) and `MaxItems`; the answer carries the items and, when there are more, the marker
//! of the next page (`NextMarker` in Lambda, `IsTruncated` with `Marker` in IAM). One
//! implementation for every list Warden serves; each API keeps its own bounds
//! ([`PageLimits`]) and its own wire names.

/// The bounds of `MaxItems` for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// `MaxItems` when the caller sends none.
    pub default: usize,
    /// The largest `MaxItems` accepted (the smallest is 1).
    pub max: usize,
}

/// Lambda's list operations: 50 items by default, at most 10 000.
pub const LAMBDA_PAGES: PageLimits = PageLimits {
    default: crate::limits::DEFAULT_LIST_ITEMS,
    max: crate::limits::MAX_LIST_ITEMS,
};

/// IAM's list operations: 100 items by default, at most 1000.
pub const IAM_PAGES: PageLimits = PageLimits {
    default: 100,
    max: 1000,
};

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// `MaxItems` is not a number within the API's bounds.
    #[error("MaxItems `{value}` must be a number from 1 to {max}")]
    MaxItems {
        /// The value sent.
        value: String,
        /// The API's largest `MaxItems`.
        max: usize,
    },
    /// The marker is not one this API hands out.
    #[error("Marker `{0}` is not valid")]
    Marker(String),
}

/// Which page a caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Where the page starts (as the previous page's marker said); `None` for the first.
    pub marker: Option<String>,
    /// How many items the page holds at most.
    pub max_items: usize,
}

impl PageRequest {
    /// Reads the caller's `Marker` and `MaxItems` (either absent); an empty marker counts as
    /// absent, as the AWS CLI sends one.
    ///
    /// # Errors
    /// [`PageError::MaxItems`] when `MaxItems` is not a number within `limits`.
    pub fn parse(
        marker: Option<&str>,
        max_items: Option<&str>,
        limits: PageLimits,
    ) -> Result<PageRequest, PageError> {
        let max_items = match max_items {
            None => limits.default,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=limits.max).contains(n))
                .ok_or_else(|| PageError::MaxItems {
                    value: s.chars().take(32).collect(),
                    max: limits.max,
                })?,
        };
        Ok(PageRequest {
            marker: marker.filter(|m| !m.is_empty()).map(str::to_owned),
            max_items,
        })
    }
}

/// One page of a list, and the marker of the next one if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The page's items, in order.
    pub items: Vec<T>,
    /// The marker of the next page; `None` on the last.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// The page of a list read after the marker with one item more than `max` (so that
    /// whether there is a next page is known without counting): the next page starts after
    /// the last item kept, named by `key`.
    pub fn from_lookahead(mut fetched: Vec<T>, max: usize, key: impl Fn(&T) -> String) -> Page<T> {
        let more = fetched.len() > max;
        fetched.truncate(max);
        let next_marker = if more { fetched.last().map(key) } else { None };
        Page {
            items: fetched,
            next_marker,
        }
    }

    /// The page of a whole list, where a marker is the offset the page starts at.
    ///
    /// # Errors
    /// [`PageError::Marker`] when the marker is not an offset.
    pub fn from_offset(all: Vec<T>, request: &PageRequest) -> Result<Page<T>, PageError> {
        let start = match &request.marker {
            Some(m) => m
                .parse::<usize>()
                .map_err(|_| PageError::Marker(m.chars().take(64).collect()))?,
            None => 0,
        };
        let total = all.len();
        let items: Vec<T> = all
            .into_iter()
            .skip(start)
            .take(request.max_items)
            .collect();
        let next = start.saturating_add(request.max_items);
        Ok(Page {
            items,
            next_marker: (next < total).then(|| next.to_string()),
        })
    }

    /// The page with each item mapped by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_marker: self.next_marker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_items_is_bounded_per_api() {
        let p = PageRequest::parse(Some(""), None, LAMBDA_PAGES).unwrap();
        assert_eq!((p.marker, p.max_items), (None, 50));
        assert_eq!(
            PageRequest::parse(None, Some("1001"), IAM_PAGES),
            Err(PageError::MaxItems {
                value: "1001".into(),
                max: 1000
            })
        );
        assert!(PageRequest::parse(None, Some("0"), LAMBDA_PAGES).is_err());
        assert!(PageRequest::parse(None, Some("x"), LAMBDA_PAGES).is_err());
        assert_eq!(
            PageRequest::parse(Some("f"), Some("10000"), LAMBDA_PAGES)
                .unwrap()
                .max_items,
            10_000
        );
    }

    #[test]
    fn lookahead_names_the_last_item_kept() {
        let page = Page::from_lookahead(vec!["a", "b", "c"], 2, |s| s.to_string());
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(page.next_marker.as_deref(), Some("b"));
        let last = Page::from_lookahead(vec!["a", "b"], 2, |s| s.to_string());
        assert_eq!(last.next_marker, None);
    }

    #[test]
    fn offsets_walk_the_whole_list_once() {
        let all: Vec<u32> = (0..7).collect();
        let mut request = PageRequest::parse(None, Some("3"), IAM_PAGES).unwrap();
        let mut seen = Vec::new();
        loop {
            let page = Page::from_offset(all.clone(), &request).unwrap();
            seen.extend(page.items);
            match page.next_marker {
                Some(m) => request.marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, all);
        request.marker = Some("x".into());
        assert_eq!(
            Page::from_offset(all, &request),
            Err(PageError::Marker("x".into()))
        );
    }
}
