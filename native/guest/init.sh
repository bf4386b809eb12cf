#!/bin/busybox sh
# /init of the e2e guest (scripts/e2e-qemu.sh): mount what edu_guest reads, run it, power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "guest: Linux $(uname -r) up"
/edu_guest
echo "guest: edu_guest exited $?"
poweroff -f
