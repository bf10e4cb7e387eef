//! What `#[cache_put]` and `#[cache_evict]` expand to: the change a writer makes to the cache of
//! a `#[cached]` function once it has returned (or, for `before = true`, before it runs). The
//! writer's return value is read with the same [`Shape`] rules as a `#[cached]` function's.
//! Not part of the stable API.

use std::hash::Hash;
use std::marker::PhantomData;

use crate::memo::shape::Shape;
use crate::memo::Memo;

/// A key a writer hands to a `#[cached]` function's cache: exactly the cache's key type.
/// `Writer` is a type named after the writer, so that the message names it (the target is on
/// the line the message shows).
#[diagnostic::on_unimplemented(
    message = "`{Writer}` gives its target a key of type `{Self}`, but the target's cache has keys of type `{K}`",
    label = "this key is a `{Self}`, not a `{K}`",
    note = "the key is `key = …` (an expression over the writer's arguments), or else the writer's only argument; its type must be the key type of the `#[cached]` function: by default its argument (owned: `String` for `&str`), or the tuple of its arguments"
)]
pub trait KeyOf<K, Writer> {
    /// The key itself.
    fn into_key(self) -> K;
}

impl<K, Writer> KeyOf<K, Writer> for K {
    fn into_key(self) -> K {
        self
    }
}

/// A value `#[cache_put]` stores: exactly the type the `#[cached]` function caches.
#[diagnostic::on_unimplemented(
    message = "`{Writer}` returns `{Self}` to store, but the cache of its target holds `{V}`",
    label = "`#[cache_put]` would store this `{Self}` in a cache of `{V}`",
    note = "`#[cache_put]` stores what the writer returns (the `Ok` value of a `Result`), which must have the type the `#[cached]` function caches (the `Ok` type of a `Result`)"
)]
pub trait ValueOf<V, Writer> {
    /// A copy of the value to store (the writer's caller gets the original).
    fn to_value(&self) -> V;
}

impl<V: Clone, Writer> ValueOf<V, Writer> for V {
    fn to_value(&self) -> V {
        self.clone()
    }
}

/// Runs a sync writer's body, made a closure so that its `return` and `?` end the body and
/// not the writer. Taken as `FnOnce` so that the closure may hand back a borrow of a `&mut`
/// argument or of `&mut self` (an `FnMut`'s result cannot borrow what it captured). Not part
/// of the stable API.
#[doc(hidden)]
#[inline(always)]
pub fn run_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// `#[cache_put(target, key = …)]`: stores the writer's value under a key built before it ran.
pub struct Put<Writer, K: 'static, V: 'static> {
    memo: &'static Memo<K, V>,
    key: K,
    writer: PhantomData<fn() -> Writer>,
}

/// The key a writer's change is for, built before the writer runs (it may consume its
/// arguments); `writer` is for messages.
fn key_of<K, Writer>(writer: PhantomData<Writer>, key: impl KeyOf<K, Writer>) -> K {
    let _ = writer;
    key.into_key()
}

impl<Writer, K, V> Put<Writer, K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// Stores under `key` once the writer succeeds (`writer` is for messages).
    pub fn new(
        memo: &'static Memo<K, V>,
        writer: PhantomData<Writer>,
        key: impl KeyOf<K, Writer>,
    ) -> Self {
        Put {
            memo,
            key: key_of(writer, key),
            writer: PhantomData,
        }
    }

    /// After the writer returned `output`: on success (an `Ok`, or any value of another type),
    /// stores the value (a `None` the target would not cache invalidates instead); then hands
    /// `output` back.
    pub fn after<S: Shape>(self, output: S::Output) -> S::Output
    where
        S::Value: ValueOf<V, Writer>,
    {
        let result = S::split(output);
        if let Ok(value) = &result {
            // The target's rule, on the target's value: a writer's `Result<Option<T>, E>`
            // holds an `Option<T>` the target may not cache.
            let value = value.to_value();
            if self.memo.stores(&value) {
                self.memo.insert(self.key, value);
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
pub struct Evict<K: 'static, V: 'static> {
    memo: &'static Memo<K, V>,
    entries: Entries<K>,
}

impl<K, V> Evict<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// Evicts the entry of `key` (`writer` is for messages).
    pub fn key<Writer>(
        memo: &'static Memo<K, V>,
        writer: PhantomData<Writer>,
        key: impl KeyOf<K, Writer>,
    ) -> Self {
        Evict {
            memo,
            entries: Entries::One(key_of(writer, key)),
        }
    }

    /// Clears the whole cache.
    pub fn all(memo: &'static Memo<K, V>) -> Self {
        Evict {
            memo,
            entries: Entries::All,
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
