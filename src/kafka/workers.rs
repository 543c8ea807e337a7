//! The threads that process tasks, and when a pass is worth waking them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Context as _;

use crate::kafka::task::Task;

/// The threads that process tasks: with one, the loop's own thread does it.
pub(super) enum Workers {
    Inline,
    Pool(rayon::ThreadPool),
}

impl Workers {
    pub(super) fn new(threads: usize) -> anyhow::Result<Workers> {
        if threads <= 1 {
            return Ok(Workers::Inline);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vigil-task-{i}"))
            .build()
            .context("cannot start the processing threads")?;
        Ok(Workers::Pool(pool))
    }

    /// Runs `work` on every task that `amount` gives work (records or keys to handle), in
    /// parallel when there are threads and enough work for them, and `meanwhile` on the
    /// calling thread while the pool works (or after the work, when it is done in line). Both
    /// always run; the first error of `work`, if any, and what `meanwhile` returned.
    pub(super) fn each_while<W, T>(
        &self,
        tasks: &mut BTreeMap<i32, Task>,
        amount: impl Fn(&Task) -> usize,
        work: W,
        meanwhile: impl FnOnce() -> T,
    ) -> (anyhow::Result<()>, T)
    where
        W: Fn(&mut Task) -> anyhow::Result<()> + Sync,
    {
        let mut total = 0;
        let mut selected: Vec<(usize, &mut Task)> = tasks
            .values_mut()
            .map(|t| (amount(t), t))
            .filter(|(n, _)| *n > 0)
            .inspect(|(n, _)| total += n)
            .collect();
        // Largest first: the pool takes the jobs in the order spawned, so a large task left
        // for last would finish alone while the other threads idle.
        selected.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        let selected = selected.into_iter().map(|(_, t)| t);
        match self {
            // Little work is done in line: waking another thread costs more than it saves, and
            // on a busy machine the wake-up alone can take milliseconds, which live traffic
            // would see as latency.
            Workers::Pool(pool) if selected.len() > 1 && total >= PARALLEL_FROM => {
                let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
                let work = &work;
                let failed_ref = &failed;
                let side = pool.in_place_scope(|scope| {
                    for task in selected {
                        scope.spawn(move |_| {
                            if let Err(e) = work(task) {
                                if let Ok(mut slot) = failed_ref.lock() {
                                    slot.get_or_insert(e);
                                }
                            }
                        });
                    }
                    meanwhile()
                });
                let failed = failed.into_inner().ok().flatten();
                (failed.map_or(Ok(()), Err), side)
            }
            _ => {
                let result = selected.into_iter().try_for_each(work);
                (result, meanwhile())
            }
        }
    }
}

/// Records (or keys with state changes) below which a pass is not worth other threads.
pub(super) const PARALLEL_FROM: usize = 2_000;
