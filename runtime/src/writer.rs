//! What `#[cache_put]` and `#[cache_evict]` expand to: the change a writer makes to the cache of
//! a `#[cached]` function once it has returned (or, for `before = true`, before it runs). The
//! writer's return value is read with the same [`Shape`] rules as a `#[cached]` function's.
//! Not part of the stable API.

use std::hash::Hash;
use std::marker::PhantomData;

use crate::shape::Shape;
use crate::Memo;

/// A key a writer hands to a `#[cached]` function's cache: exactly the cache's key type.
/// `Target` is the type of the `#[cached]` function and `Writer` a type named after the writer,
/// so that the message names both.
#[diagnostic::on_unimplemented(
    message = "`{Writer}` gives `{Target}` a key of type `{Self}`, but its cache has keys of type `{K}`",
    label = "this key is a `{Self}`, not a `{K}`",
    note = "the key is `key = …` (an expression over the writer's arguments), or else the writer's only argument; its type must be the key type of the `#[cached]` function: by default its argument (owned: `String` for `&str`), or the tuple of its arguments"
)]
pub trait KeyOf<K, Target, Writer> {
    /// The key itself.
    fn into_key(self) -> K;
}

impl<K, Target, Writer> KeyOf<K, Target, Writer> for K {
    fn into_key(self) -> K {
        self
    }
}

/// A value `#[cache_put]` stores: exactly the type the `#[cached]` function caches.
#[diagnostic::on_unimplemented(
    message = "`{Writer}` returns `{Self}` to store, but the cache of `{Target}` holds `{V}`",
    label = "`#[cache_put]` would store this `{Self}` in a cache of `{V}`",
    note = "`#[cache_put]` stores what the writer returns (the `Ok` value of a `Result`), which must have the type the `#[cached]` function caches (the `Ok` type of a `Result`)"
)]
pub trait ValueOf<V, Target, Writer> {
    /// A copy of the value to store (the writer's caller gets the original).
    fn to_value(&self) -> V;
}

impl<V: Clone, Target, Writer> ValueOf<V, Target, Writer> for V {
    fn to_value(&self) -> V {
        self.clone()
    }
}

/// `#[cache_put(target, key = …)]`: stores the writer's value under a key built before it ran.
pub struct Put<Target, Writer, K: 'static, V: 'static> {
    memo: &'static Memo<K, V>,
    key: K,
    names: PhantomData<fn() -> (Target, Writer)>,
}

impl<Target, Writer, K, V> Put<Target, Writer, K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// `target` (the `#[cached]` function) and `writer` are for messages. The key is built
    /// before the writer runs: the writer may consume its arguments.
    pub fn new(
        memo: &'static Memo<K, V>,
        target: Target,
        writer: PhantomData<Writer>,
        key: impl KeyOf<K, Target, Writer>,
    ) -> Self {
        let _ = (target, writer);
        Put {
            memo,
            key: key.into_key(),
            names: PhantomData,
        }
    }

    /// After the writer returned `output`: on success (an `Ok`, or any value of another type),
    /// stores the value (a `None` the target would not cache invalidates instead); then hands
    /// `output` back.
    pub fn after<S: Shape>(self, output: S::Output) -> S::Output
    where
        S::Value: ValueOf<V, Target, Writer>,
    {
        let result = S::split(output);
        if let Ok(value) = &result {
            if S::store_rule(self.memo.caches_none())(value) {
                self.memo.insert(self.key, value.to_value());
            } else {
                self.memo.invalidate(&self.key);
            }
        }
        S::join(result)
    }
}

/// What `#[cache_evict]` removes.
enum Entries<K> {
    One(K),
    All,
}

/// `#[cache_evict(target, key = …)]` or `#[cache_evict(target, all)]`.
pub struct Evict<Target, Writer, K: 'static, V: 'static> {
    memo: &'static Memo<K, V>,
    entries: Entries<K>,
    names: PhantomData<fn() -> (Target, Writer)>,
}

impl<Target, Writer, K, V> Evict<Target, Writer, K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// Evicts the entry of `key`, built before the writer runs (`target` and `writer` are for
    /// messages).
    pub fn key(
        memo: &'static Memo<K, V>,
        target: Target,
        writer: PhantomData<Writer>,
        key: impl KeyOf<K, Target, Writer>,
    ) -> Self {
        let _ = (target, writer);
        Evict {
            memo,
            entries: Entries::One(key.into_key()),
            names: PhantomData,
        }
    }

    /// Clears the whole cache (`target` and `writer` are for messages).
    pub fn all(memo: &'static Memo<K, V>, target: Target, writer: PhantomData<Writer>) -> Self {
        let _ = (target, writer);
        Evict {
            memo,
            entries: Entries::All,
            names: PhantomData,
        }
    }

    /// `before = true`: evicts before the writer runs, whatever it then returns.
    pub fn before(&self) {
        self.evict();
    }

    fn evict(&self) {
        match &self.entries {
            Entries::One(key) => {
                self.memo.invalidate(key);
            }
            Entries::All => self.memo.clear(),
        }
    }

    /// After the writer returned `output`: on success (an `Ok`, or any value of another type),
    /// evicts (again, with `before = true`: a value a concurrent caller read from the old
    /// source while the writer ran is not kept); then hands `output` back.
    pub fn after<S: Shape>(self, output: S::Output) -> S::Output {
        let result = S::split(output);
        if result.is_ok() {
            self.evict();
        }
        S::join(result)
    }
}
