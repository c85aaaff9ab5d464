//! The committer: ready batches of many partitions, one transaction.

use std::collections::VecDeque;

use actix::prelude::*;
use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::batches::ParsedBatch;
use crate::writer::{DbWriter, GroupWritten, WriteGroup};

use super::state::*;

/// Group the parsed batches waiting in `rx` into transactions of at most `max_messages`
/// messages (at least one batch), running up to `concurrency` of them at once. Batches of one
/// partition never meet in a group or run concurrently: a pipeline submits its next batch only
/// after the answer for the previous one. Ends when every sender is gone and all work is done.
pub(super) async fn committer(mut rx: mpsc::UnboundedReceiver<Submit>, writer: Addr<DbWriter>, max_messages: usize, concurrency: usize) {
    let mut queue: VecDeque<Submit> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    let mut open = true;
    loop {
        while open {
            match rx.try_recv() {
                Ok(s) => queue.push_back(s),
                Err(mpsc::TryRecvError::Closed) => open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        while running.len() < concurrency.max(1) && !queue.is_empty() {
            let mut group = Vec::new();
            let mut messages = 0;
            while let Some(next) = queue.front() {
                if !group.is_empty() && messages + next.batch.message_count > max_messages {
                    break;
                }
                messages += next.batch.message_count;
                group.extend(queue.pop_front());
            }
            running.push(write_group(writer.clone(), group));
        }
        if !open && queue.is_empty() && running.is_empty() {
            return;
        }
        tokio::select! {
            item = rx.next(), if open => match item {
                Some(s) => queue.push_back(s),
                None => open = false,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
}

/// One transaction for a group; each batch's submitter gets its own answer.
pub(super) async fn write_group(writer: Addr<DbWriter>, group: Vec<Submit>) {
    let (batches, replies): (Vec<ParsedBatch>, Vec<_>) = group.into_iter().map(|s| (s.batch, s.reply)).unzip();
    match writer.send(WriteGroup(batches)).await {
        Ok(Ok(GroupWritten { answers, batches })) => {
            for (answer, reply) in answers.into_iter().zip(replies) {
                let _ = reply.send(Ok(answer));
            }
            // Freed here, after the answers, off the writer's thread.
            drop(batches);
        }
        Ok(Err(e)) => {
            let e = std::sync::Arc::new(e);
            replies.into_iter().for_each(|r| drop(r.send(Err(BatchFailed::Write(e.clone())))))
        }
        Err(e) => replies.into_iter().for_each(|r| drop(r.send(Err(BatchFailed::WriterUnavailable(e))))),
    }
}
