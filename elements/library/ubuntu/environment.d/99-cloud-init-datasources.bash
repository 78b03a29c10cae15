# Until LP #1316475 is fixed, cloud-init asks only EC2 at first boot
# unless told otherwise.
export DIB_CLOUD_INIT_DATASOURCES=${DIB_CLOUD_INIT_DATASOURCES:-"Ec2"}
export DIB_LOCAL_IMAGE=${DIB_LOCAL_IMAGE:-""}
