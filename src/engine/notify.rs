//! Sending failure notifications: the owner and every active admin, each emailed once.

use super::core::Engine;
use super::error::EngineError;
use super::notice::{self, RoundEnd};
use crate::delivery::LogQuery;
use crate::health;
use crate::ports::{DirectoryError, Email, Notice, Notification, User};

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
            let mut end = RoundEnd { sent_to: notification.sent_to.clone(), done: false, last_error: None };
            let recipients = match self.recipients(&notification).await {
                Ok(recipients) => recipients,
                Err(e) => {
                    end.last_error = Some(e.to_string());
                    self.inner
                        .storage
                        .update_notification(notice::round_end(&notification, claim.token, end, now))
                        .await?;
                    continue;
                }
            };
            let (subject, body) = self.notification_email(&notification).await?;
            let mut pending = false;
            let mut lost = false;
            for user in recipients.iter().filter(|u| !notification.sent_to.contains(&u.id)) {
                let email = Email {
                    to: user.email.clone(),
                    to_name: (!user.name.is_empty()).then(|| user.name.clone()),
                    subject: subject.clone(),
                    body: body.clone(),
                };
                match self.inner.mailer.send(&email).await {
                    Ok(()) => {
                        emails += 1;
                        end.sent_to.push(user.id.clone());
                        let progress = notice::progress(&notification, claim.token, &end.sent_to);
                        if !self.inner.storage.update_notification(progress).await? {
                            // Another worker took it over (the lease ran out): it goes on from here.
                            lost = true;
                            break;
                        }
                    }
                    Err(e) if e.is_permanent() => {
                        // Retrying cannot reach this address; do not try it forever.
                        end.last_error = Some(format!("{}: {e}", user.id));
                        end.sent_to.push(user.id.clone());
                    }
                    Err(e) => {
                        end.last_error = Some(format!("{}: {e}", user.id));
                        pending = true;
                    }
                }
            }
            if lost {
                continue;
            }
            end.done = !pending;
            self.inner.storage.update_notification(notice::round_end(&notification, claim.token, end, now)).await?;
        }
        Ok(emails)
    }

    /// The owner (when active) and every active admin, each once (by id and by address).
    async fn recipients(&self, notification: &Notification) -> Result<Vec<User>, DirectoryError> {
        let directory = &self.inner.directory;
        let owner = directory.user(&notification.tenant, &notification.owner).await?;
        let admins = directory.active_admins(&notification.tenant).await?;
        Ok(notice::recipients(owner, admins))
    }

    async fn notification_email(&self, notification: &Notification) -> Result<(String, String), EngineError> {
        if let Notice::EndpointWarning { workflow, action, .. } | Notice::EndpointPaused { workflow, action, .. } =
            &notification.notice
        {
            let workflows = self.workflows(&notification.tenant);
            let found = workflows.as_deref().and_then(|set| set.get(workflow));
            let name = found.map(|w| w.name().to_owned());
            let url = found.and_then(|w| w.action(action)).map(|a| crate::workflow::redact_url(a.url()));
            if let Some(email) = health::email(&notification.notice, name.as_deref(), url.as_deref()) {
                return Ok(email);
            }
        }
        let storage = &self.inner.storage;
        let delivery = storage.delivery(&notification.tenant, notification.delivery_id).await?;
        let query =
            LogQuery::tenant(notification.tenant.clone()).delivery(notification.delivery_id).limit(LogQuery::MAX_LIMIT);
        let entries = storage.log(&query).await?;
        let workflows = self.workflows(&notification.tenant);
        let name = delivery
            .as_ref()
            .and_then(|d| workflows.as_deref().and_then(|set| set.get(&d.workflow)))
            .map(|w| w.name().to_owned());
        Ok(notice::email(notification.delivery_id, delivery.as_ref(), &entries, name.as_deref()))
    }
}
