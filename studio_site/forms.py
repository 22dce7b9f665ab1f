"""Form pieces every app's pages use."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files at once (Django's documented recipe).

    Only presence is checked here: each file's content is validated one by
    one where it is stored, so one bad file does not reject the good ones
    beside it.
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
