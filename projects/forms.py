"""Forms of the project pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["title", "style", "target_duration", "preset", "output_format"]
        labels = {"target_duration": "Target duration (seconds)"}
        widgets = {"target_duration": forms.NumberInput(attrs={"step": "0.5"})}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files at once (Django's documented recipe).

    Only presence is checked here: each file's content is validated one by one
    by ``add_asset``, so one bad file does not reject the good ones beside it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        items = data if isinstance(data, list | tuple) else [data]
        files = [item for item in items if item]
        if self.required and not files:
            raise forms.ValidationError(
                self.error_messages["required"], code="required"
            )
        return files


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Photos, a song or a script",
        error_messages={"required": "Choose at least one file to upload."},
        # The accept list only helps the file picker; the server decides by content.
        widget=MultipleFileInput(attrs={"accept": "image/*,audio/*,.pdf,.md,.txt"}),
    )
