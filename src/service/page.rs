//! One page type for every connection: keyset on (sort key, id), one extra
//! row fetched to know whether more exist. Never OFFSET.

use sea_orm::{
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value,
    sea_query::{Expr, ExprTrait, Order},
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// A position in a list: the row's sort key and its id (the tie-breaker).
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor<K> {
    pub key: K,
    pub id: Uuid,
}

/// The natural order of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first (histories).
    Asc,
    /// Newest first.
    Desc,
}

#[derive(Clone, Debug)]
pub struct Page<K> {
    pub limit: u64,
    pub after: Option<Cursor<K>>,
    pub before: Option<Cursor<K>>,
    /// `last` was given: take the rows nearest `before` (or the end).
    pub backward: bool,
}

#[derive(Debug)]
pub struct Slice<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<T> Slice<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Slice<U> {
        Slice {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }

    /// Leaves out the items `f` has nothing for (rows deleted since the page was read).
    pub fn filter_map<U>(self, f: impl FnMut(T) -> Option<U>) -> Slice<U> {
        Slice {
            items: self.items.into_iter().filter_map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

impl<K> Page<K> {
    /// Relay arguments, already decoded: `first` and `last` are exclusive,
    /// counts are 0..=100, none given means the first 20.
    pub fn new(
        first: Option<i32>,
        last: Option<i32>,
        after: Option<Cursor<K>>,
        before: Option<Cursor<K>>,
    ) -> AppResult<Self> {
        let count = |n: i32, name: &str| -> AppResult<u64> {
            let n = u64::try_from(n)
                .map_err(|_| AppError::bad_input(format!("`{name}` must not be negative")))?;
            if n > MAX_PAGE_SIZE {
                return Err(AppError::bad_input(format!(
                    "`{name}` must be at most {MAX_PAGE_SIZE}"
                )));
            }
            Ok(n)
        };
        let (limit, backward) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input("pass `first` or `last`, not both"));
            }
            (Some(n), None) => (count(n, "first")?, false),
            (None, Some(n)) => (count(n, "last")?, true),
            // `before` alone pages backwards, like `last` with the default size.
            (None, None) => (DEFAULT_PAGE_SIZE, before.is_some() && after.is_none()),
        };
        Ok(Self {
            limit,
            after,
            before,
            backward,
        })
    }

    pub fn first(limit: u64) -> Self {
        Self {
            limit,
            after: None,
            before: None,
            backward: false,
        }
    }

    /// Trims the extra row, restores list order, and sets the page flags.
    /// The flag against the paging direction is true when a cursor on that
    /// side was given (its row lies there).
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Slice<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        if self.backward {
            rows.reverse();
            Slice {
                items: rows,
                has_next_page: self.before.is_some(),
                has_previous_page: more,
            }
        } else {
            Slice {
                items: rows,
                has_next_page: more,
                has_previous_page: self.after.is_some(),
            }
        }
    }

    /// The SQL row order for this page: the list order, or its reverse when paging backwards.
    pub fn sql_order(&self, list: SortOrder) -> Order {
        match (list, self.backward) {
            (SortOrder::Asc, false) | (SortOrder::Desc, true) => Order::Asc,
            _ => Order::Desc,
        }
    }
}

impl<K: Clone + Into<Value>> Page<K> {
    /// The keyset conditions: rows strictly after `after` and strictly
    /// before `before`, in list order. Each case gets its own WHERE, never a
    /// `$1 IS NULL OR …` that a generic plan cannot use an index for.
    pub fn conditions(&self, key: &Expr, id: &Expr, list: SortOrder) -> Vec<Expr> {
        let tuple = || Expr::tuple([key.clone(), id.clone()]);
        let value = |c: &Cursor<K>| Expr::tuple([Expr::val(c.key.clone()), Expr::val(c.id)]);
        let mut out = Vec::new();
        if let Some(c) = &self.after {
            out.push(match list {
                SortOrder::Asc => tuple().gt(value(c)),
                SortOrder::Desc => tuple().lt(value(c)),
            });
        }
        if let Some(c) = &self.before {
            out.push(match list {
                SortOrder::Asc => tuple().lt(value(c)),
                SortOrder::Desc => tuple().gt(value(c)),
            });
        }
        out
    }

    /// Applies conditions, order and limit (+1) to an entity query.
    pub fn apply<E: EntityTrait>(
        &self,
        mut select: Select<E>,
        key: Expr,
        id: Expr,
        list: SortOrder,
    ) -> Select<E> {
        for cond in self.conditions(&key, &id, list) {
            select = select.filter(cond);
        }
        let order = self.sql_order(list);
        select
            .order_by(key, order.clone())
            .order_by(id, order)
            .limit(self.limit + 1)
    }
}
