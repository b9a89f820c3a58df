"""`Config` (one phone number) becomes `PhoneNumber`: the same table (`whatsapp_configs`).

Django renames the content type with the model; its permissions keep their rows but not their
codenames, so they are renamed here too: groups (Suporte) and users keep what they were given.
"""

import django.db.models.deletion
from django.db import migrations, models

ACTIONS = ("add", "change", "delete", "view")


def rename_permissions(apps, schema_editor, old="config", new="phonenumber",
                       new_name="phone number") -> None:
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # Both ways the content type is "phonenumber" here: it is renamed right after RenameModel
    # forwards, and only after this operation backwards.
    content_type = ContentType.objects.filter(app_label="whatsapp", model="phonenumber").first()
    if content_type is None:
        return  # a fresh database: post_migrate creates the permissions under the new name
    for action in ACTIONS:
        Permission.objects.filter(content_type=content_type, codename=f"{action}_{old}").update(
            codename=f"{action}_{new}", name=f"Can {action} {new_name}")


def rename_permissions_back(apps, schema_editor) -> None:
    rename_permissions(apps, schema_editor, old="phonenumber", new="config",
                       new_name="config")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("organizations", "0001_initial"),
        ("whatsapp", "0008_webhook_log_db_defaults"),
    ]

    operations = [
        migrations.RenameModel("Config", "PhoneNumber"),
        migrations.AlterField(
            model_name="phonenumber",
            name="connection",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="phone_numbers",
                to="whatsapp.connection", verbose_name="connection",
            ),
        ),
        migrations.RunPython(rename_permissions, rename_permissions_back),
    ]
