//! Listing a bucket's object names: prefix, delimiter, a start point and a page size, as S3's
//! ListObjects and ListObjectsV2 define them.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::store::Summary;

/// What to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Keys whose rest (after the prefix) contains this are rolled up into common prefixes.
    pub delimiter: Option<&'a str>,
    /// Only keys (and common prefixes) after this one.
    pub start_after: Option<&'a str>,
    /// At most this many keys and common prefixes together.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Keys, in order.
    pub objects: Vec<(String, Summary)>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// The last key or common prefix of this page, where the next one starts after.
    pub last: Option<String>,
}

/// Lists `objects` (all of one bucket, in key order).
pub fn list(objects: &BTreeMap<String, Summary>, query: &ListQuery<'_>) -> Listing {
    let mut listing = Listing::default();
    let delimiter = query.delimiter.filter(|d| !d.is_empty());
    let start = match query.start_after {
        Some(after) if after >= query.prefix => Bound::Excluded(after),
        _ => Bound::Included(query.prefix),
    };
    let mut count = 0;
    for (key, summary) in objects.range::<str, _>((start, Bound::Unbounded)) {
        if !key.starts_with(query.prefix) {
            break;
        }
        // Resuming after a common prefix skips the keys it rolled up.
        if let (Some(after), Some(_)) = (query.start_after, delimiter) {
            if is_rolled_up_prefix(after, delimiter) && key.starts_with(after) {
                continue;
            }
        }
        let rolled_up = delimiter.and_then(|d| {
            let rest = &key[query.prefix.len()..];
            rest.find(d)
                .map(|at| key[..query.prefix.len() + at + d.len()].to_owned())
        });
        if let Some(prefix) = &rolled_up {
            if listing.common_prefixes.last() == Some(prefix) {
                continue;
            }
        }
        if count == query.max_keys {
            listing.truncated = true;
            break;
        }
        count += 1;
        match rolled_up {
            Some(prefix) => {
                listing.last = Some(prefix.clone());
                listing.common_prefixes.push(prefix);
            }
            None => {
                listing.last = Some(key.clone());
                listing.objects.push((key.clone(), summary.clone()));
            }
        }
    }
    listing
}

fn is_rolled_up_prefix(marker: &str, delimiter: Option<&str>) -> bool {
    delimiter.is_some_and(|d| marker.ends_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(keys: &[&str]) -> BTreeMap<String, Summary> {
        keys.iter()
            .map(|k| {
                let summary = Summary {
                    size: 1,
                    etag: "e".into(),
                    last_modified: chrono::DateTime::UNIX_EPOCH,
                };
                ((*k).to_owned(), summary)
            })
            .collect()
    }

    fn keys(listing: &Listing) -> Vec<&str> {
        listing.objects.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let all = objects(&["a", "b/1", "b/2", "c", "d/x/1", "e"]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let query = ListQuery {
                prefix: "",
                delimiter: Some("/"),
                start_after: after.as_deref(),
                max_keys: 2,
            };
            let page = list(&all, &query);
            seen.extend(keys(&page).iter().map(|k| k.to_string()));
            seen.extend(page.common_prefixes.iter().cloned());
            if !page.truncated {
                break;
            }
            after = page.last.clone();
        }
        assert_eq!(seen, ["a", "b/", "c", "d/", "e"]);
    }

    #[test]
    fn prefix_and_delimiter_roll_up_deeper_keys() {
        let all = objects(&["p/a", "p/b/1", "p/b/2", "q"]);
        let query = ListQuery {
            prefix: "p/",
            delimiter: Some("/"),
            start_after: None,
            max_keys: 1000,
        };
        let page = list(&all, &query);
        assert_eq!(keys(&page), ["p/a"]);
        assert_eq!(page.common_prefixes, ["p/b/"]);
        assert!(!page.truncated);
        let none = ListQuery {
            max_keys: 0,
            ..query
        };
        assert!(list(&all, &none).truncated);
    }
}
