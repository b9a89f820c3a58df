"""Where a connection's owner business came from (issue 14 §1).

Before this, the browser's `businessId` could be stored as the owner and never be replaced.
Rows whose stored owner matches the signed PARTNER_ADDED kept in `source_event` are proven by
Meta's webhook; every other stored owner is marked unproven: it stays visible to support but
never attributes a WABA, until Meta's next word on it (a webhook or the Graph) replaces it.
"""

from django.db import migrations, models


def classify_owners(apps, schema_editor) -> None:
    Connection = apps.get_model("whatsapp", "Connection")
    for row in Connection.objects.exclude(owner_business_id="").iterator():
        source = "unproven"
        for entry in (row.source_event or {}).get("entry") or []:
            for change in (entry or {}).get("changes") or []:
                info = ((change or {}).get("value") or {}).get("waba_info") or {}
                if (str(info.get("waba_id") or "") == row.waba_id
                        and str(info.get("owner_business_id") or "") == row.owner_business_id):
                    source = "webhook"
        Connection.objects.filter(pk=row.pk).update(owner_business_source=source)


class Migration(migrations.Migration):
    dependencies = [
        ("whatsapp", "0009_rename_config_to_phonenumber"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="owner_business_source",
            field=models.CharField(
                blank=True,
                choices=[("webhook", "Meta's signed webhook"),
                         ("graph", "Graph API with the tenant's token"),
                         ("unproven", "Unproven (stored before it was checked)")],
                max_length=16, verbose_name="owner business source"),
        ),
        migrations.RunPython(classify_owners, migrations.RunPython.noop),
    ]
