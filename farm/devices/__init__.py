"""Devices that time candidates: the host CPU, Android phones over adb (doubles: farm.testing)."""
