from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_ptbr_labels'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditlog',
            name='action',
            field=models.CharField(choices=[('WHATSAPP_CONNECTED', 'WhatsApp connected'), ('WHATSAPP_DISCONNECTED', 'WhatsApp disconnected'), ('WABA_ORPHANED', 'WABA received without an organization'), ('WABA_AWAITING_BROWSER', "WABA received, awaiting the browser's confirmation"), ('WABA_CLAIMED', 'Orphan WABA claimed'), ('TOKEN_INVALIDATED', 'Token invalidated'), ('WEBHOOK_REPLAYED', 'Webhook replayed'), ('KEY_ROTATED', 'Encryption key rotated'), ('API_TOKENS_REVOKED', 'API tokens revoked'), ('LOGIN_LOCKED_OUT', 'Login locked out')], db_index=True, max_length=40, verbose_name='action'),
        ),
    ]
