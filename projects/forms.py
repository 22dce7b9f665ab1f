"""Forms of the project pages."""

from __future__ import annotations

from typing import Any

from django import forms

from characters.access import characters_for_user
from studio_site.forms import MultipleFileField, MultipleFileInput

from .models import Project
from .styles import style_choices


class StyleField(forms.ChoiceField):
    """One of the enabled style presets (looked up when the form is made,
    so presets edited in admin show at once)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=style_choices, **kwargs)


class ProjectForm(forms.ModelForm):
    style = StyleField()

    class Meta:
        model = Project
        fields = [
            "title",
            "style",
            "target_duration",
            "preset",
            "output_format",
        ]
        labels = {"target_duration": "Target duration (seconds)"}
        widgets = {"target_duration": forms.NumberInput(attrs={"step": "0.5"})}


class CharacterChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.name if obj.is_ready else f"{obj.name} (no identity yet)"


class CharacterChoiceForm(forms.ModelForm):
    """Who the project's video is about: one of the owner's characters (no
    one else's can be chosen), or none, for Quick mode to find in the photos."""

    class Meta:
        model = Project
        fields = ["character", "auto_character", "review_policy"]
        field_classes = {"character": CharacterChoiceField}
        labels = {
            "auto_character": "Quick mode: find the person in the photos",
            "review_policy": "Scenes that fail the consistency check",
        }

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["character"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = characters_for_user(owner)
        field.empty_label = "None (Quick mode, when on)"
        field.help_text = "Every scene that shows them is checked against their photos."


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Photos, a song or a script",
        error_messages={"required": "Choose at least one file to upload."},
        # The accept list only helps the file picker; the server decides by content.
        widget=MultipleFileInput(attrs={"accept": "image/*,audio/*,.pdf,.md,.txt"}),
    )
