"""The data-access gateway: contractors reach patient databases only through phiguard."""
