"""Inbound facts: leads (contacts and their identities), messages, statuses, history."""

from datetime import UTC, datetime

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .numbers import PhoneNumber


class Message(models.Model):
    """One WhatsApp message, stored once per wamid with the raw webhook item."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    class Source(models.TextChoices):
        CLOUD_API = "cloud_api", _("Cloud API")
        PHONE_APP = "phone_app", _("Sent from the phone app")
        HISTORY = "history", _("History sync")

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="whatsapp_messages", verbose_name=_("organization"),
    )
    config = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="messages", verbose_name=_("phone number"))
    # Unique through Meta.constraints, not `unique=True`: on PostgreSQL that would add a second
    # `varchar_pattern_ops` index for LIKE, which no query uses and every insert maintains.
    wamid = models.CharField(_("WhatsApp message id"), max_length=255)
    direction = models.CharField(_("direction"), max_length=10, choices=Direction)
    # cloud_api, phone_app (smb echo) or history.
    source = models.CharField(_("source"), max_length=20, default="cloud_api")
    type = models.CharField(_("type"), max_length=32)
    timestamp = models.DateTimeField(_("time"))
    status = models.CharField(_("status"), max_length=16, blank=True)
    raw = models.JSONField(_("raw payload"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Filled by webhook ingestion (whatsapp/ingestion.py).
    contact = models.ForeignKey("Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="messages", verbose_name=_("contact"))
    body = models.TextField(_("text"), blank=True)
    media_id = models.CharField(_("media id"), max_length=128, blank=True)
    # The message this one replies to (context.id).
    reply_to_wamid = models.CharField(_("reply to"), max_length=255, blank=True)
    # The message an edit, revoke or reaction is about; indexed (Meta.indexes) so a late
    # original finds them.
    target_wamid = models.CharField(_("target message"), max_length=255, blank=True)
    referral = models.JSONField(_("ad referral"), null=True, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    status_at = models.DateTimeField(_("status at"), null=True, blank=True)
    edited_at = models.DateTimeField(_("edited at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        db_table = "whatsapp_messages"
        ordering = ["-timestamp"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            models.UniqueConstraint(fields=["wamid"], name="whatsapp_messages_wamid_key"),
        ]
        indexes = [models.Index(fields=["target_wamid"], name="msg_target_wamid_idx")]

    def __str__(self) -> str:
        return self.wamid


class Contact(models.Model):
    """A lead: one WhatsApp user as seen by one organization (BSUIDs are portfolio-scoped).

    Identity lives in ContactIdentity (every BSUID and normalized phone ever seen, unique per
    organization); `user_id` and `wa_id` here are the current ones, denormalized for reading.
    """

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="whatsapp_contacts",
        verbose_name=_("organization"),
    )
    user_id = models.CharField(_("business-scoped user id"), max_length=160, blank=True)
    # Normalized digits (Brazilian mobiles always with the 9th digit); empty for username users.
    wa_id = models.CharField(_("phone"), max_length=32, blank=True)
    username = models.CharField(_("username"), max_length=128, blank=True)
    profile_name = models.CharField(_("profile name"), max_length=200, blank=True)
    profile_name_at = models.DateTimeField(_("profile name at"), null=True, blank=True)
    # The name in the business's phone address book (smb_app_state_sync).
    saved_name = models.CharField(_("saved name"), max_length=200, blank=True)
    in_address_book = models.BooleanField(_("in the phone's address book"), null=True, blank=True)
    address_book_at = models.DateTimeField(_("address book at"), null=True, blank=True)
    # Inbound Cloud API messages open the 24 h customer-service window; echoes never do.
    last_inbound_at = models.DateTimeField(_("last inbound message at"), null=True, blank=True)
    # A person answered from the phone app: automation must stay quiet.
    human_takeover_at = models.DateTimeField(_("answered by a person at"), null=True, blank=True)
    # The tenant or the timeout gave the conversation back to automation (whatsapp.events);
    # a later echo takes it over again.
    handed_back_at = models.DateTimeField(_("handed back to automation at"), null=True,
                                          blank=True)
    # Click-to-WhatsApp ad that brought the lead (earliest referral seen).
    referral = models.JSONField(_("ad referral"), null=True, blank=True)
    referral_at = models.DateTimeField(_("referral at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_contacts"
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user_id"], condition=~Q(user_id=""),
                                    name="uniq_contact_user_id_per_org"),
            models.UniqueConstraint(fields=["organization", "wa_id"], condition=~Q(wa_id=""),
                                    name="uniq_contact_phone_per_org"),
        ]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        permissions = [("erase_contact", _("Can export and erase leads (LGPD)"))]

    def __str__(self) -> str:
        return self.profile_name or self.saved_name or self.wa_id or self.user_id

    def refresh_identity(self) -> None:
        """Recomputes the current BSUID and phone from this contact's identities."""
        self.set_identity([((i.kind, i.value), i.first_seen_at, i.superseded_at)
                           for i in self.identities.all()])
        Contact.objects.filter(pk=self.pk).update(user_id=self.user_id, wa_id=self.wa_id)

    def set_identity(self, identities) -> None:
        """From (key, first_seen_at, superseded_at): the newest BSUID and the newest phone not
        superseded (a user who changes number gets a new BSUID and retires the old number);
        ties broken by value."""
        floor = datetime.min.replace(tzinfo=UTC)
        users = [i for i in identities if i[0][0] == ContactIdentity.Kind.USER_ID]
        live = [i for i in users if i[2] is None] or users
        phones = [i for i in identities if i[0][0] == ContactIdentity.Kind.PHONE]
        phones = [i for i in phones if i[2] is None] or phones
        newest = lambda items: max(items, key=lambda i: (i[1] or floor, i[0][1]))[0][1]  # noqa: E731
        self.user_id = newest(live) if live else ""
        self.wa_id = newest(phones) if phones else ""

    def note_profile(self, when: datetime | None, name: str, username: str) -> bool:
        """Keeps the profile of the newest item that carried one (ties: deterministic)."""
        floor = datetime.min.replace(tzinfo=UTC)
        new = (when or floor, name, username)
        if new <= (self.profile_name_at or floor, self.profile_name, self.username):
            return False
        self.profile_name_at, self.profile_name, self.username = when, name, username
        return True

    def note_address_book(self, when: datetime | None, present: bool, name: str) -> bool:
        """smb_app_state_sync add/remove; the newest wins, a removal wins a same-time tie."""
        floor = datetime.min.replace(tzinfo=UTC)
        new = (when or floor, not present, name)
        old = (self.address_book_at or floor, self.in_address_book is False, self.saved_name)
        if self.in_address_book is not None and new <= old:
            return False
        self.address_book_at, self.in_address_book = when, present
        self.saved_name = name[:200] if present else ""
        return True

    def note_inbound(self, when: datetime, referral: dict | None) -> None:
        """A user message: the service window opens; the earliest ad referral is the source."""
        if self.last_inbound_at is None or when > self.last_inbound_at:
            self.last_inbound_at = when
        if referral and (self.referral_at is None or when < self.referral_at):
            self.referral, self.referral_at = referral, when

    @property
    def taken_over(self) -> bool:
        """A person answered from the phone app after the last hand-back."""
        return bool(self.human_takeover_at and (self.handed_back_at is None
                                                or self.human_takeover_at > self.handed_back_at))

    def note_takeover(self, when: datetime) -> None:
        if self.human_takeover_at is None or when > self.human_takeover_at:
            self.human_takeover_at = when


class ContactIdentity(models.Model):
    """One key that identifies a contact: a BSUID (current or previous) or a normalized phone."""

    class Kind(models.TextChoices):
        USER_ID = "user_id", _("Business-scoped user id")
        PHONE = "phone", _("Phone")

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("organization"))
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities",
                                verbose_name=_("contact"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    value = models.CharField(_("value"), max_length=160)
    # Earliest message time that carried it: the newest BSUID is the current one.
    first_seen_at = models.DateTimeField(_("first seen at"), null=True, blank=True)
    # Set by the BSUID system messages (user_changed_user_id / user_changed_number) and the
    # old user_id_update: the retired id or number is kept so late messages still match.
    superseded_at = models.DateTimeField(_("superseded at"), null=True, blank=True)

    class Meta:
        db_table = "whatsapp_contact_identities"
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "value"],
                                    name="uniq_contact_identity"),
        ]
        verbose_name = _("contact identity")
        verbose_name_plural = _("contact identities")

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class MessageStatus(models.Model):
    """One status webhook per (wamid, status): the audit trail and the dedupe key.

    Keyed by wamid, not by a foreign key: statuses often arrive for messages sent before we
    existed, or before the message row is stored.
    """

    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+",
                                     verbose_name=_("organization"))
    config = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("phone number"))
    wamid = models.CharField(_("WhatsApp message id"), max_length=255)
    status = models.CharField(_("status"), max_length=16)
    timestamp = models.DateTimeField(_("time"))
    recipient_id = models.CharField(_("recipient"), max_length=32, blank=True)
    recipient_user_id = models.CharField(_("recipient user id"), max_length=160, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    pricing = models.JSONField(_("pricing"), null=True, blank=True)
    conversation = models.JSONField(_("conversation"), null=True, blank=True)
    biz_opaque_callback_data = models.CharField(_("callback data"), max_length=512, blank=True)
    raw = models.JSONField(_("raw payload"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_message_statuses"
        ordering = ["-timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["wamid", "status"], name="uniq_status_per_wamid"),
        ]
        verbose_name = _("message status")
        verbose_name_plural = _("message statuses")

    def __str__(self) -> str:
        return self.wamid


class HistorySync(models.Model):
    """Coexistence history sync progress of one number, as support sees it."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        DECLINED = "declined", _("Declined by the business")

    config = models.OneToOneField(
        PhoneNumber,
        on_delete=models.CASCADE,
        related_name="history_sync",
        verbose_name=_("phone number"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status, default=Status.IN_PROGRESS
    )
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    phase = models.PositiveSmallIntegerField(_("latest phase"), default=0)
    chunks_received = models.PositiveIntegerField(_("chunks received"), default=0)
    messages_imported = models.PositiveIntegerField(_("messages imported"), default=0)
    error_code = models.PositiveIntegerField(_("error code"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_history_syncs"
        verbose_name = _("history sync")
        verbose_name_plural = _("history syncs")

    def __str__(self) -> str:
        return f"{self.config} · {self.get_status_display()} · {self.progress}%"


class HistoryChunk(models.Model):
    """One `history` chunk received, per (phone number, phase, chunk_order)."""

    config = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="history_chunks",
                               verbose_name=_("phone number"))
    phone_number_id = models.CharField(_("phone number id"), max_length=64)
    phase = models.PositiveSmallIntegerField(_("phase"))
    chunk_order = models.PositiveIntegerField(_("chunk order"))
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    thread_count = models.PositiveIntegerField(_("threads"), default=0)
    message_count = models.PositiveIntegerField(_("messages"), default=0)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_history_chunks"
        ordering = ["phone_number_id", "phase", "chunk_order"]
        constraints = [
            models.UniqueConstraint(
                fields=["phone_number_id", "phase", "chunk_order"], name="uniq_history_chunk"
            ),
        ]
        verbose_name = _("history chunk")
        verbose_name_plural = _("history chunks")

    def __str__(self) -> str:
        return _("%(number)s, phase %(phase)s, chunk %(chunk)s") % {
            "number": self.phone_number_id, "phase": self.phase, "chunk": self.chunk_order}
