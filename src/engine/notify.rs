//! Failure notifications: the owner and every active admin, each emailed once.

use super::*;

impl Engine {
    /// Sends due failure notifications: one email per recipient (the record owner when active, and every
    /// active admin, each once). Each recipient is recorded as soon as the mailer accepts their email, so a
    /// mailer failure never emails anyone twice, and a lost storage write can email again only the one person
    /// whose email was accepted just before it.
    pub(super) async fn send_notifications(&self) -> Result<usize, EngineError> {
        let now = self.now();
        let claim = self.claim(now, self.inner.batch_size);
        let mut emails = 0;
        for notification in self.inner.storage.claim_notifications(&claim).await? {
            let attempts = notification.attempts.saturating_add(1);
            let mut sent_to = notification.sent_to.clone();
            let mut last_error = None;
            let mut done = false;
            let mut lost = false;
            match self.recipients(&notification).await {
                Err(e) => last_error = Some(e.to_string()),
                Ok(recipients) => {
                    let email_for = self.notification_email(&notification).await?;
                    let mut pending = false;
                    for user in recipients.iter().filter(|u| !notification.sent_to.contains(&u.id)) {
                        let email = Email {
                            to: user.email.clone(),
                            to_name: (!user.name.is_empty()).then(|| user.name.clone()),
                            subject: email_for.0.clone(),
                            body: email_for.1.clone(),
                        };
                        match self.inner.mailer.send(&email).await {
                            Ok(()) => {
                                emails += 1;
                                sent_to.push(user.id.clone());
                                let progress = NotificationUpdate {
                                    delivery_id: notification.delivery_id,
                                    token: claim.token,
                                    sent_to: sent_to.clone(),
                                    done: false,
                                    keep_claim: true,
                                    attempts: notification.attempts,
                                    next_attempt_at: notification.next_attempt_at,
                                    last_error: notification.last_error.clone(),
                                };
                                if !self.inner.storage.update_notification(progress).await? {
                                    // Another worker took it over (the lease ran out): it goes on from here.
                                    lost = true;
                                    break;
                                }
                            }
                            Err(e) if e.is_permanent() => {
                                // Retrying cannot reach this address; do not try it forever.
                                last_error = Some(format!("{}: {e}", user.id));
                                sent_to.push(user.id.clone());
                            }
                            Err(e) => {
                                last_error = Some(format!("{}: {e}", user.id));
                                pending = true;
                            }
                        }
                    }
                    done = !pending;
                }
            }
            if lost {
                continue;
            }
            // Back off 2, 4, 8 ... minutes, at most an hour; the notification stays until everyone has it.
            let backoff = chrono::Duration::minutes(2i64.saturating_pow(attempts.min(6)).min(60));
            let update = NotificationUpdate {
                delivery_id: notification.delivery_id,
                token: claim.token,
                sent_to,
                done,
                keep_claim: false,
                attempts,
                next_attempt_at: now + backoff,
                last_error,
            };
            self.inner.storage.update_notification(update).await?;
        }
        Ok(emails)
    }

    /// The owner (when active) and every active admin, each once (by id and by address).
    async fn recipients(&self, notification: &Notification) -> Result<Vec<User>, DirectoryError> {
        let directory = &self.inner.directory;
        let mut users = Vec::new();
        if let Some(owner) = directory.user(&notification.tenant, &notification.owner).await? {
            users.push(owner);
        }
        users.extend(directory.active_admins(&notification.tenant).await?);
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        users.retain(|u| {
            u.active
                && !u.email.trim().is_empty()
                && ids.insert(u.id.clone())
                && addresses.insert(u.email.trim().to_lowercase())
        });
        Ok(users)
    }

    async fn notification_email(&self, notification: &Notification) -> Result<(String, String), EngineError> {
        let storage = &self.inner.storage;
        let delivery = storage.delivery(&notification.tenant, notification.delivery_id).await?;
        let entries = storage
            .log(
                &LogQuery::tenant(notification.tenant.clone())
                    .delivery(notification.delivery_id)
                    .limit(LogQuery::MAX_LIMIT),
            )
            .await?;
        let (workflow, action, record, module, url) = match &delivery {
            Some(d) => {
                (d.workflow.as_str(), d.action.as_str(), d.record_id.as_str(), d.module.as_str(), redact_url(&d.url))
            }
            None => ("?", "?", "?", "?", String::from("?")),
        };
        let workflow_name = self
            .workflows(&notification.tenant)
            .and_then(|set| set.get(workflow).map(|w| w.name().to_owned()))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| workflow.to_owned());
        let subject = format!("Webhook failed: \"{action}\" of workflow \"{workflow_name}\"");
        let mut body = format!(
            "A webhook could not deliver its data after every retry.\n\n\
             Workflow: {workflow_name} ({workflow})\nAction:   {action}\nURL:      {url}\nRecord:   {module} {record}\n\
             Delivery: {}\n\nAttempts:\n",
            notification.delivery_id
        );
        let mut attempts: Vec<&LogEntry> =
            entries.iter().filter(|e| e.attempt > 0 && e.status != DeliveryStatus::Dispatched).collect();
        attempts.reverse();
        for entry in attempts {
            let what = match (&entry.error, entry.http_status) {
                (Some(error), _) => error.clone(),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => entry.message.clone(),
            };
            body.push_str(&format!("  {}. {}  {}\n", entry.attempt, entry.at.to_rfc3339(), what));
        }
        body.push_str("\nYou can redeliver it from the webhook log once the receiver is fixed.\n");
        Ok((subject, body))
    }
}
