"""Forms of the character pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from studio_site.forms import MultipleFileField, MultipleFileInput

from .models import MAX_REFERENCES, Character
from .registration import provider_threshold


class PhotosField(MultipleFileField):
    """Several photos at once, no more than a character has room for; each
    photo's content is validated one by one by ``add_reference_upload``."""

    def __init__(self, *args: Any, max_files: int = MAX_REFERENCES, **kwargs: Any):
        kwargs.setdefault(
            # The accept list only helps the file picker; the server decides.
            "widget",
            MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
        )
        super().__init__(*args, **kwargs)
        self.max_files = max_files

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        files = super().clean(data, initial)
        if len(files) > self.max_files:
            raise forms.ValidationError(
                f"Choose at most {self.max_files}"
                f" photo{'' if self.max_files == 1 else 's'} at once.",
                code="too_many",
            )
        return files


PHOTOS_HELP = (
    f"Up to {MAX_REFERENCES} photos of the same person: JPEG, PNG or WebP,"
    " the face large, sharp, evenly lit and turned towards the camera."
)


class NewCharacterForm(forms.ModelForm):
    photos = PhotosField(
        label="Reference photos",
        help_text=PHOTOS_HELP,
        error_messages={"required": "Choose at least one photo of the person."},
    )

    class Meta:
        model = Character
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class ReferenceUploadForm(forms.Form):
    photos = PhotosField(
        label="Add photos",
        error_messages={"required": "Choose at least one photo to add."},
    )

    def __init__(self, *args: Any, room: int = MAX_REFERENCES, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields["photos"]
        assert isinstance(field, PhotosField)
        field.max_files = max(room, 1)
        field.help_text = (
            f"Room for {room} more photo{'' if room == 1 else 's'}"
            f" ({MAX_REFERENCES} at most; rejected ones do not count)."
        )


class CharacterSettingsForm(forms.ModelForm):
    class Meta:
        model = Character
        fields = ["name", "description", "threshold"]
        labels = {"threshold": "Same-person threshold"}
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "threshold": forms.NumberInput(
                attrs={"step": "0.01", "min": "0", "max": "1"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default = provider_threshold(self.instance.provider)
        self.fields["threshold"].help_text = (
            "Similarity in [0, 1] a face needs to count as this person; higher"
            f" is stricter. Empty: the {self.instance.provider} provider's own"
            f" ({default:.2f})."
        )
