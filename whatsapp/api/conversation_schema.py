"""OpenAPI shapes of the conversation read API's answers (documentation only: the views
build the JSON in `conversation_json.py`)."""

from rest_framework import serializers


class IdentityOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["phone", "user_id", "username"])
    value = serializers.CharField()
    current = serializers.BooleanField()
    firstSeenAt = serializers.DateTimeField(allow_null=True)
    supersededAt = serializers.DateTimeField(allow_null=True)


class ContactOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    profileName = serializers.CharField(allow_null=True)
    savedName = serializers.CharField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True, help_text="Digits; null: username-only lead.")
    userId = serializers.CharField(allow_null=True, help_text="Current BSUID.")
    identities = IdentityOut(many=True)
    addressable = serializers.BooleanField()
    lastInboundAt = serializers.DateTimeField(allow_null=True)
    serviceWindowOpen = serializers.BooleanField()
    humanTakeoverAt = serializers.DateTimeField(allow_null=True)
    referral = serializers.JSONField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()


class MediaOut(serializers.Serializer):
    mediaId = serializers.CharField()
    status = serializers.ChoiceField(allow_null=True, choices=[
        "pending", "stored", "rejected", "failed", "expired", "deleted"])
    mimeType = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(allow_null=True)


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    wamid = serializers.CharField()
    contactId = serializers.IntegerField()
    phoneNumberId = serializers.CharField(allow_null=True)
    direction = serializers.ChoiceField(choices=["inbound", "outbound", "echo"])
    source = serializers.ChoiceField(choices=["cloud_api", "phone_app", "history"])
    type = serializers.CharField()
    text = serializers.CharField()
    timestamp = serializers.DateTimeField()
    status = serializers.CharField(allow_null=True)
    statusAt = serializers.DateTimeField(allow_null=True)
    replyTo = serializers.CharField(allow_null=True)
    referral = serializers.JSONField(allow_null=True)
    errors = serializers.JSONField()
    editedAt = serializers.DateTimeField(allow_null=True)
    revokedAt = serializers.DateTimeField(allow_null=True)
    content = serializers.JSONField(allow_null=True, help_text="A contacts message's cards.")
    media = MediaOut(allow_null=True)
    mediaUrl = serializers.URLField(allow_null=True, help_text="Expiring link; needs the "
                                    "organization's Bearer token too.")
    mediaUrlExpiresAt = serializers.DateTimeField(allow_null=True)


class ContactsPage(serializers.Serializer):
    contacts = ContactOut(many=True)
    nextCursor = serializers.CharField(allow_null=True)


class MessagesPage(serializers.Serializer):
    contact = ContactOut()
    messages = MessageOut(many=True)
    nextCursor = serializers.CharField(allow_null=True)


class ErrorOut(serializers.Serializer):
    error = serializers.CharField()
    code = serializers.CharField(required=False)
