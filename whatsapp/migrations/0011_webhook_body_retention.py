"""Retention of raw bodies (issue 15 §8): raw_body may be NULL once purged, when it was, and a
partial index of the processed rows that still hold one (the purge's way in). Dropping NOT NULL
and adding a nullable column are catalog-only; the index is built in one pass over the table
(brief write lock on a very large table: run this migration in a quiet moment)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('organizations', '0001_initial'),
        ('whatsapp', '0010_connection_owner_business_source'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhooklog',
            name='body_purged_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='body purged at'),
        ),
        migrations.AlterField(
            model_name='webhooklog',
            name='raw_body',
            field=models.BinaryField(null=True, verbose_name='raw body'),
        ),
        migrations.AddIndex(
            model_name='webhooklog',
            index=models.Index(condition=models.Q(('raw_body__isnull', False), ('status', 'processed')), fields=['received_at'], name='webhook_body_kept_idx'),
        ),
    ]
