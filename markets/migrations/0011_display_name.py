"""Participants get the name people see (`display_name`), recorded from now on in ParticipantJoined as
"name". Rows of logs written before it take their username: what replaying those logs gives."""

from django.db import migrations, models
from django.db.models import F


def names_of_old_rows(apps, schema_editor):
    apps.get_model("markets", "Participant").objects.update(display_name=F("username"))


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0010_rejoin"),
    ]

    operations = [
        migrations.AddField(
            model_name="participant",
            name="display_name",
            field=models.CharField(default="", max_length=150),
            preserve_default=False,
        ),
        migrations.RunPython(names_of_old_rows, migrations.RunPython.noop),
    ]
